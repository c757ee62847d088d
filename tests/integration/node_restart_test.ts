/**
 * The node agent killed and restarted: a stage killed between attach and
 * mount (the `stage.after-attach` failpoint) resumes on the same device
 * without a format, or unstages without a trace; an idle staged and
 * published volume keeps working across the restart; and when its nbdfuse
 * dies with it (a container restart in userspace mode) the volume reports
 * abnormal and unstage + stage bring it back with its data.
 *
 * Run as root: `deno test -A tests/integration/node_restart_test.ts`.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type Attachment,
  findMountByTarget,
  isProcessAlive,
  readMountInfo,
} from "../../blockdev/mod.ts";
import { FAILPOINT_EXIT_CODE, FAILPOINTS_ENV } from "../../csi/mod.ts";
import {
  assertNothingLeft,
  findLeftovers,
  type NodeEnvironment,
  readVolumeState,
  volumeProcesses,
  withNodeEnvironment,
} from "../helpers/node_env.ts";
import {
  assertContent,
  createVolume,
  nodeRequests,
  randomBytes,
  writeFileSynced,
} from "../helpers/volume_steps.ts";

const GiB = 1024 ** 3;

async function killNode(env: NodeEnvironment): Promise<void> {
  env.node.client.close();
  env.node.process.kill("SIGKILL");
  const status = await env.node.process.status;
  assert.equal(status.signal, "SIGKILL");
}

function formatLines(output: string, volumeId: string): string[] {
  return output.split("\n").filter((l) =>
    l.includes("formatting new volume") && l.includes(volumeId)
  );
}

/**
 * A stage that dies at the `stage.after-attach` failpoint: the agent exits
 * with the failpoint's code after attaching, before anything is formatted or
 * mounted. Asserts that it died exactly there and returns what it left.
 */
async function dieBetweenAttachAndMount(
  env: NodeEnvironment,
  req: ReturnType<typeof nodeRequests>,
): Promise<Attachment> {
  const name = req.stage.volume_id;
  await env.node.stop();
  await env.restartNode({ env: { [FAILPOINTS_ENV]: "stage.after-attach" } });
  const dying = env.node;
  const answer = await dying.client.node.NodeStageVolume(req.stage).then(
    () => "answered",
    (e) => String(e),
  );
  assert.notEqual(answer, "answered", "the stage must not finish");
  const status = await dying.process.status;
  dying.client.close();
  assert.equal(status.code, FAILPOINT_EXIT_CODE, `the agent died elsewhere:\n${dying.output()}`);
  const reached = dying.output().split("\n").filter((l) => l.includes("failpoint reached"));
  assert.equal(reached.length, 1, dying.output());
  assert.equal(JSON.parse(reached[0]).failpoint, "stage.after-attach");
  assert.deepEqual(formatLines(dying.output(), name), [], "it died before any mkfs");

  // Attached: the device recorded and connected (its loop device bound to
  // the nbdfuse file, the helper alive); nothing mounted at the staging path.
  const state = await readVolumeState(env, name);
  assert.equal(state?.phase, "staging");
  const attachment = state.attachment;
  assert.ok(attachment?.device, JSON.stringify(state));
  assert.equal(attachment.mode, "userspace", "this host attaches through nbdfuse + loop");
  const loops = (await findLeftovers(env)).loopDevices;
  assert.deepEqual(loops.map((l) => l.split(" ")[0]), [attachment.device]);
  assert.ok(
    attachment.helperPid !== undefined && await isProcessAlive(attachment.helperPid),
    "nbdfuse runs",
  );
  assert.equal(await findMountByTarget(req.staging), undefined, "nothing mounted at staging");
  const mounts = (await readMountInfo()).filter((m) => m.source === attachment.device);
  assert.deepEqual(mounts, [], "the device is mounted nowhere");
  return attachment;
}

/** A new 1 GiB ext4 volume staged once (formatted), 100 KB synced to it, unstaged clean. */
async function formattedVolumeWithData(env: NodeEnvironment, name: string) {
  const volume = await createVolume(env.controller.client, { name, kind: "ext4", sizeBytes: GiB });
  const req = nodeRequests(volume, { kind: "ext4", kubeletDir: env.kubeletDir });
  await env.node.client.node.NodeStageVolume(req.stage);
  assert.equal(formatLines(env.node.output(), name).length, 1, "the first stage formats");
  const data = randomBytes(100_000);
  await writeFileSynced(join(req.staging, "before-crash.bin"), data);
  const processes = await volumeProcesses(env, name);
  await env.node.client.node.NodeUnstageVolume(req.unstage);
  await assertNothingLeft(env, processes);
  return { req, data };
}

Deno.test("node restart: an unknown failpoint name is refused at start, naming the variable", async () => {
  await withNodeEnvironment(async (env) => {
    await env.node.stop();
    await assert.rejects(
      env.restartNode({ env: { [FAILPOINTS_ENV]: "stage.after-atach" } }),
      /ZEROFS_CSI_FAILPOINTS names unknown failpoint\(s\) "stage\.after-atach"; valid names: .*stage\.after-attach/,
    );
    await env.restartNode();
  });
});

Deno.test("node restart: killed between attach and mount → restage on the same device, no reformat", async () => {
  await withNodeEnvironment(async (env) => {
    const name = "pvc-crash-mid-stage";
    const { req, data } = await formattedVolumeWithData(env, name);
    const attachment = await dieBetweenAttachAndMount(env, req);

    await env.restartNode();
    assert.match(env.node.output(), /volume needs attention.*pvc-crash-mid-stage/);
    await env.node.client.node.NodeStageVolume(req.stage);
    const after = await readVolumeState(env, name);
    assert.equal(after?.phase, "staged");
    assert.deepEqual(after?.attachment, attachment, "the same device and helper");
    assert.deepEqual(
      (await findLeftovers(env)).loopDevices.map((l) => l.split(" ")[0]),
      [attachment.device],
      "no second device",
    );
    assert.equal((await findMountByTarget(req.staging))?.source, attachment.device);
    assert.deepEqual(formatLines(env.node.output(), name), [], "no mkfs after the restart");
    await assertContent(join(req.staging, "before-crash.bin"), data);

    const processes = await volumeProcesses(env, name);
    await env.node.client.node.NodeUnstageVolume(req.unstage);
    await assertNothingLeft(env, processes);
  });
});

Deno.test("node restart: killed between attach and mount → unstage leaves nothing, data intact", async () => {
  await withNodeEnvironment(async (env) => {
    const name = "pvc-crash-mid-stage-unstage";
    const { req, data } = await formattedVolumeWithData(env, name);
    await dieBetweenAttachAndMount(env, req);

    await env.restartNode();
    const processes = await volumeProcesses(env, name);
    await env.node.client.node.NodeUnstageVolume(req.unstage);
    await assertNothingLeft(env, processes);

    await env.node.client.node.NodeStageVolume(req.stage);
    assert.deepEqual(formatLines(env.node.output(), name), [], "no mkfs after the restart");
    await assertContent(join(req.staging, "before-crash.bin"), data);
    const restaged = await volumeProcesses(env, name);
    await env.node.client.node.NodeUnstageVolume(req.unstage);
    await assertNothingLeft(env, restaged);
  });
});

/** A new 1 GiB ext4 volume, staged and published, with 64 KiB synced to `before.bin`. */
async function stagePublishAndWrite(env: NodeEnvironment, name: string) {
  const volume = await createVolume(env.controller.client, { name, kind: "ext4", sizeBytes: GiB });
  const req = nodeRequests(volume, { kind: "ext4", kubeletDir: env.kubeletDir });
  await env.node.client.node.NodeStageVolume(req.stage);
  await env.node.client.node.NodePublishVolume(req.publish);
  const data = randomBytes(64 * 1024);
  await writeFileSynced(join(req.target, "before.bin"), data);
  return { req, data };
}

Deno.test("node restart: killed while idle → staged and published volume still works", async () => {
  await withNodeEnvironment(async (env) => {
    const name = "pvc-crash-idle";
    const { req, data } = await stagePublishAndWrite(env, name);
    const processes = await volumeProcesses(env, name);
    const state = await readVolumeState(env, name);

    await killNode(env);
    await env.restartNode();
    assert.match(env.node.output(), /re-adopted staged volume/);

    assert.equal((await findMountByTarget(req.staging))?.source, state?.attachment?.device);
    assert.ok(await findMountByTarget(req.target), "the target is still mounted");
    const later = randomBytes(64 * 1024);
    await writeFileSynced(join(req.target, "after.bin"), later);
    await assertContent(join(req.target, "before.bin"), data);
    await assertContent(join(req.staging, "after.bin"), later);
    const stats = await env.node.client.node.NodeGetVolumeStats({
      volume_id: name,
      volume_path: req.target,
    });
    assert.equal(stats.volume_condition.abnormal, false, stats.volume_condition.message);
    // Kubelet retries the stage and publish after a restart: both are no-ops.
    await env.node.client.node.NodeStageVolume(req.stage);
    await env.node.client.node.NodePublishVolume(req.publish);
    assert.deepEqual(
      (await volumeProcesses(env, name)).map((p) => p.pid).sort(),
      processes.map((p) => p.pid).sort(),
      "the same ZeroFS and nbdfuse serve the volume",
    );

    await env.node.client.node.NodeUnpublishVolume(req.unpublish);
    await env.node.client.node.NodeUnstageVolume(req.unstage);
    await assertNothingLeft(env, processes);
  });
});

Deno.test("node restart with its helpers (a container restart in userspace mode): abnormal, then unstage and restage recover", async () => {
  await withNodeEnvironment(async (env) => {
    const name = "pvc-helper-killed";
    const { req, data } = await stagePublishAndWrite(env, name);
    assert.equal(formatLines(env.node.output(), name).length, 1, "the first stage formats");
    const helperPid = (await readVolumeState(env, name))?.attachment?.helperPid;
    assert.ok(helperPid !== undefined);

    // The runtime kills every process of the container: the agent and nbdfuse.
    await killNode(env);
    Deno.kill(helperPid, "SIGKILL");
    await env.restartNode();

    const stats = await env.node.client.node.NodeGetVolumeStats({
      volume_id: name,
      volume_path: req.target,
    });
    assert.equal(stats.volume_condition.abnormal, true);
    assert.match(stats.volume_condition.message, /disconnected|not connected/i);

    // Kubelet's way out: unpublish, unstage, stage and publish again.
    const processes = await volumeProcesses(env, name);
    await env.node.client.node.NodeUnpublishVolume(req.unpublish);
    await env.node.client.node.NodeUnstageVolume(req.unstage);
    await assertNothingLeft(env, processes);
    await env.node.client.node.NodeStageVolume(req.stage);
    await env.node.client.node.NodePublishVolume(req.publish);
    await assertContent(join(req.target, "before.bin"), data);
    assert.deepEqual(formatLines(env.node.output(), name), [], "no mkfs after the restart");
    const restaged = await volumeProcesses(env, name);
    await env.node.client.node.NodeUnpublishVolume(req.unpublish);
    await env.node.client.node.NodeUnstageVolume(req.unstage);
    await assertNothingLeft(env, restaged);
  });
});
