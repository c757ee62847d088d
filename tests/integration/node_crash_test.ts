/**
 * The node agent killed at every step of stage, unstage, publish, unpublish
 * and expand (each failpoint of `csi/failpoints.ts` makes the agent exit with
 * its code right there), then started again: the agent's recovery and the
 * retried call leave the volume staged or published with its data, or torn
 * down without a trace — whichever that step's outcome must be:
 *
 * - stage: recovery leaves phase `staging`; the retried stage finishes it on
 *   the volume's data (never a second mkfs), and an unstage instead reverses
 *   it completely;
 * - unstage: recovery finishes the unstage at start (nothing left); the
 *   retried unstage succeeds; a later stage finds the data;
 * - publish: recovery keeps a target that was mounted and takes back one
 *   that was not; the retried publish leaves it published;
 * - unpublish: recovery finishes the unpublish; the retried one succeeds;
 * - expand: recovery finishes the expansion (device and filesystem at the
 *   new size, data intact); the retried call answers at once.
 *
 * One S3 server and one pair of drivers for all of it; one step per failpoint.
 *
 * Run as root: `deno test -A tests/integration/node_crash_test.ts`.
 */

import assert from "node:assert/strict";
import { statfs } from "node:fs/promises";
import { join } from "node:path";
import { deviceSizeBytes, findMountByTarget } from "../../blockdev/mod.ts";
import {
  FAILPOINT_EXIT_CODE,
  FAILPOINT_NAMES,
  type FailpointName,
  FAILPOINTS_ENV,
} from "../../csi/mod.ts";
import {
  assertNothingLeft,
  type NodeEnvironment,
  readVolumeState,
  withNodeEnvironment,
} from "../helpers/node_env.ts";
import {
  assertContent,
  capabilityFor,
  createVolume,
  nodeRequests,
  randomBytes,
  writeFileSynced,
} from "../helpers/volume_steps.ts";

const GiB = 1024 ** 3;
const CALL_BOUND_MS = 120_000;
/** How long an agent that hit a failpoint may take to be gone. */
const EXIT_BOUND_MS = 10_000;

type Requests = ReturnType<typeof nodeRequests>;

/** One volume the test works on, and the data it must keep. */
interface TestVolume {
  name: string;
  req: Requests;
  data: Uint8Array | null;
  sizeBytes: number;
}

/**
 * SIGKILL the agent between calls (a crash where nothing is half done), then
 * close the test's client. Not a graceful stop: closing the client first makes
 * the agent's HTTP/2 stack process a GOAWAY, and Deno 2.9.6's nghttp2 aborts
 * there now and then (`find_stream_on_goaway_func: Assertion
 * stream->closed_next == NULL`, exit 134); this test restarts the agent ~45 times.
 */
async function killAgent(agent: NodeEnvironment["node"]): Promise<void> {
  agent.process.kill("SIGKILL");
  await agent.process.status;
  agent.client.close();
}

/**
 * Start the agent with `failpoint` armed, make the call, and assert that the
 * agent died exactly there; then start it again, unarmed (its recovery runs).
 */
async function crashAt(
  env: NodeEnvironment,
  failpoint: FailpointName,
  call: (node: NodeEnvironment["node"]["client"]["node"]) => Promise<unknown>,
): Promise<void> {
  await killAgent(env.node);
  await env.restartNode({ env: { [FAILPOINTS_ENV]: failpoint } });
  const dying = env.node;
  const answer = await call(dying.client.node).then(() => "answered", (e) => String(e));
  assert.notEqual(answer, "answered", `the call must not finish at ${failpoint}`);
  // The call ends when the agent dies; an agent still alive answered with an error instead.
  const status = await Promise.race([
    dying.process.status,
    new Promise<null>((r) => setTimeout(() => r(null), EXIT_BOUND_MS)),
  ]);
  if (status === null) {
    await dying.stop();
    assert.fail(
      `the agent did not reach ${failpoint}; the call answered ${answer}:\n${dying.output()}`,
    );
  }
  dying.client.close();
  assert.equal(status.code, FAILPOINT_EXIT_CODE, `the agent died elsewhere:\n${dying.output()}`);
  const reached = dying.output().split("\n").filter((l) => l.includes("failpoint reached"));
  assert.deepEqual(reached.map((l) => JSON.parse(l).failpoint), [failpoint]);
  await env.restartNode();
}

function formatLines(env: NodeEnvironment, name: string): string[] {
  return env.node.output().split("\n").filter((l) =>
    l.includes("formatting new volume") && l.includes(name)
  );
}

/** Staged: phase `staged`, the recorded device mounted at the staging path, the data there. */
async function assertStaged(env: NodeEnvironment, v: TestVolume): Promise<void> {
  const state = await readVolumeState(env, v.name);
  assert.equal(state?.phase, "staged", JSON.stringify(state));
  assert.equal(state.expansion, undefined);
  assert.equal((await findMountByTarget(v.req.staging))?.source, state.attachment?.device);
  if (v.data) await assertContent(join(v.req.staging, "keep.bin"), v.data);
}

/** Published at the target: recorded without a pending phase, mounted, the data readable there. */
async function assertPublished(env: NodeEnvironment, v: TestVolume): Promise<void> {
  await assertStaged(env, v);
  const state = await readVolumeState(env, v.name);
  assert.deepEqual(state?.publishedTargets, [{ path: v.req.target, readOnly: false }]);
  assert.ok(await findMountByTarget(v.req.target), "the target is mounted");
  if (v.data) await assertContent(join(v.req.target, "keep.bin"), v.data);
}

/** Staged and not published: no record of the target, no mount, no target path. */
async function assertUnpublished(env: NodeEnvironment, v: TestVolume): Promise<void> {
  await assertStaged(env, v);
  assert.deepEqual((await readVolumeState(env, v.name))?.publishedTargets, []);
  assert.equal(await findMountByTarget(v.req.target), undefined);
  assert.equal(await Deno.lstat(v.req.target).then(() => "exists", () => "gone"), "gone");
}

async function newVolume(env: NodeEnvironment, name: string): Promise<TestVolume> {
  const volume = await createVolume(env.controller.client, { name, kind: "ext4", sizeBytes: GiB });
  return {
    name,
    req: nodeRequests(volume, { kind: "ext4", kubeletDir: env.kubeletDir }),
    data: null,
    sizeBytes: GiB,
  };
}

/** The failpoints of one operation, in the order its steps run. */
function failpointsOf(operation: string): FailpointName[] {
  return FAILPOINT_NAMES.filter((n) => n.startsWith(`${operation}.`));
}

const STAGE_FAILPOINTS = failpointsOf("stage").filter((n) => n !== "stage.after-format");

/** A stage killed at `failpoint`: recovery leaves it `staging`; unstage reverses it, a retry finishes it. */
async function stageCrash(env: NodeEnvironment, v: TestVolume, failpoint: FailpointName) {
  const node = () => env.node.client.node;
  const stage = (n: ReturnType<typeof node>) => n.NodeStageVolume(v.req.stage, CALL_BOUND_MS);
  await crashAt(env, failpoint, stage);
  assert.equal((await readVolumeState(env, v.name))?.phase, "staging");
  await node().NodeUnstageVolume(v.req.unstage);
  await assertNothingLeft(env);

  await crashAt(env, failpoint, stage);
  await stage(node());
  await assertStaged(env, v);
  assert.deepEqual(formatLines(env, v.name), [], "no mkfs on a formatted volume");
  await node().NodeUnstageVolume(v.req.unstage);
  await assertNothingLeft(env);
}

/**
 * A fresh volume killed right after mkfs (its record still says "not
 * formatted"): the retried stage mounts that filesystem, never a second mkfs;
 * an unstage instead leaves nothing.
 */
async function stageCrashAfterFormat(env: NodeEnvironment) {
  const node = () => env.node.client.node;
  const retried = await newVolume(env, "pvc-crash-after-format-retry");
  await crashAt(env, "stage.after-format", (n) => n.NodeStageVolume(retried.req.stage));
  assert.equal((await readVolumeState(env, retried.name))?.phase, "staging");
  await node().NodeStageVolume(retried.req.stage, CALL_BOUND_MS);
  assert.deepEqual(formatLines(env, retried.name), [], "the restarted agent ran no mkfs");
  retried.data = randomBytes(50_000);
  await writeFileSynced(join(retried.req.staging, "keep.bin"), retried.data);
  await node().NodeUnstageVolume(retried.req.unstage);
  await assertNothingLeft(env);
  await node().NodeStageVolume(retried.req.stage, CALL_BOUND_MS);
  await assertStaged(env, retried);
  await node().NodeUnstageVolume(retried.req.unstage);
  await assertNothingLeft(env);

  const reversed = await newVolume(env, "pvc-crash-after-format-unstage");
  await crashAt(env, "stage.after-format", (n) => n.NodeStageVolume(reversed.req.stage));
  await node().NodeUnstageVolume(reversed.req.unstage);
  await assertNothingLeft(env);
}

const UNSTAGE_FAILPOINTS = failpointsOf("unstage");

/** An unstage killed at `failpoint`: recovery finishes it at start; the data survives. */
async function unstageCrash(env: NodeEnvironment, v: TestVolume, failpoint: FailpointName) {
  const node = () => env.node.client.node;
  await node().NodeStageVolume(v.req.stage, CALL_BOUND_MS);
  await crashAt(env, failpoint, (n) => n.NodeUnstageVolume(v.req.unstage, CALL_BOUND_MS));
  assert.match(env.node.output(), /finished an interrupted unstage/);
  await assertNothingLeft(env);
  await node().NodeUnstageVolume(v.req.unstage);
  await assertNothingLeft(env);
}

const PUBLISH_FAILPOINTS = failpointsOf("publish");

/** A publish killed at `failpoint`: recovery keeps a mounted target, takes back an unmounted one. */
async function publishCrash(env: NodeEnvironment, v: TestVolume, failpoint: FailpointName) {
  const node = () => env.node.client.node;
  await crashAt(env, failpoint, (n) => n.NodePublishVolume(v.req.publish));
  if (failpoint === "publish.after-mount") await assertPublished(env, v);
  else await assertUnpublished(env, v);
  await node().NodePublishVolume(v.req.publish);
  await assertPublished(env, v);
  await node().NodeUnpublishVolume(v.req.unpublish);
  await assertUnpublished(env, v);
}

const UNPUBLISH_FAILPOINTS = failpointsOf("unpublish");

/** An unpublish killed at `failpoint`: recovery finishes it; the retried one succeeds. */
async function unpublishCrash(env: NodeEnvironment, v: TestVolume, failpoint: FailpointName) {
  const node = () => env.node.client.node;
  await node().NodePublishVolume(v.req.publish);
  await assertPublished(env, v);
  await crashAt(env, failpoint, (n) => n.NodeUnpublishVolume(v.req.unpublish));
  await assertUnpublished(env, v);
  await node().NodeUnpublishVolume(v.req.unpublish);
  await assertUnpublished(env, v);
}

const EXPAND_FAILPOINTS = failpointsOf("expand");

/** An expansion by 1 GiB killed at `failpoint`: recovery finishes it; the retry answers at once. */
async function expandCrash(env: NodeEnvironment, v: TestVolume, failpoint: FailpointName) {
  const fsBefore = await filesystemBytes(v.req.staging);
  const required = v.sizeBytes + GiB;
  const grown = await env.controller.client.controller.ControllerExpandVolume({
    volume_id: v.name,
    capacity_range: { required_bytes: required },
    volume_capability: capabilityFor("ext4"),
  });
  assert.equal(Number(grown.capacity_bytes), required);
  const expand = {
    volume_id: v.name,
    volume_path: v.req.staging,
    staging_target_path: v.req.staging,
    capacity_range: { required_bytes: required },
    volume_capability: capabilityFor("ext4"),
  };
  await crashAt(env, failpoint, (n) => n.NodeExpandVolume(expand, CALL_BOUND_MS));
  assert.match(env.node.output(), /finishing an interrupted expansion/);
  await assertStaged(env, v);
  const state = await readVolumeState(env, v.name);
  assert.equal(await deviceSizeBytes(state!.attachment!.device), required);
  const fsAfter = await filesystemBytes(v.req.staging);
  assert.ok(fsAfter > fsBefore + 0.9 * GiB && fsAfter <= required, `df ${fsBefore} → ${fsAfter}`);
  const again = await env.node.client.node.NodeExpandVolume(expand, CALL_BOUND_MS);
  assert.equal(Number(again.capacity_bytes), required);
  v.sizeBytes = required;
}

async function filesystemBytes(path: string): Promise<number> {
  const s = await statfs(path);
  return s.blocks * s.bsize;
}

Deno.test("node crash at every failpoint: the retried call or the agent's recovery finishes or reverses the step", async (t) => {
  const covered = [
    ...STAGE_FAILPOINTS,
    "stage.after-format",
    ...UNSTAGE_FAILPOINTS,
    ...PUBLISH_FAILPOINTS,
    ...UNPUBLISH_FAILPOINTS,
    ...EXPAND_FAILPOINTS,
  ];
  assert.deepEqual(covered.sort(), [...FAILPOINT_NAMES].sort(), "every failpoint has its step");

  await withNodeEnvironment(async (env) => {
    const node = () => env.node.client.node;
    const v = await newVolume(env, "pvc-crash");
    await node().NodeStageVolume(v.req.stage, CALL_BOUND_MS);
    assert.equal(formatLines(env, v.name).length, 1, "the first stage formats");
    v.data = randomBytes(200_000);
    await writeFileSynced(join(v.req.staging, "keep.bin"), v.data);
    await node().NodeUnstageVolume(v.req.unstage);
    await assertNothingLeft(env);

    // A failed step leaves a wreck the next would start from: stop at the first.
    const step = async (name: string, fn: () => Promise<void>) => {
      if (!(await t.step(name, fn))) throw new Error(`step ${name} failed; later steps not run`);
    };
    for (const fp of STAGE_FAILPOINTS) await step(fp, () => stageCrash(env, v, fp));
    await step("stage.after-format", () => stageCrashAfterFormat(env));
    for (const fp of UNSTAGE_FAILPOINTS) await step(fp, () => unstageCrash(env, v, fp));

    await node().NodeStageVolume(v.req.stage, CALL_BOUND_MS);
    for (const fp of PUBLISH_FAILPOINTS) await step(fp, () => publishCrash(env, v, fp));
    for (const fp of UNPUBLISH_FAILPOINTS) await step(fp, () => unpublishCrash(env, v, fp));
    for (const fp of EXPAND_FAILPOINTS) await step(fp, () => expandCrash(env, v, fp));

    await node().NodeUnstageVolume(v.req.unstage);
    await assertNothingLeft(env);
  });
});
