/**
 * The node data path, through the CSI API of the real `main.ts` processes:
 * the whole life of a volume for every access kind, idempotent retries,
 * read-only publish and NodeGetInfo.
 *
 * Run as root: `deno test -A tests/integration/node_lifecycle_test.ts`.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { findMountByTarget } from "../../blockdev/mod.ts";
import {
  assertNothingLeft,
  findLeftovers,
  type NodeEnvironment,
  readVolumeState,
  volumeProcesses,
  withNodeEnvironment,
} from "../helpers/node_env.ts";
import {
  type AccessKind,
  assertContent,
  createVolume,
  nodeRequests,
  randomBytes,
  writeAtOffset,
  writeFileSynced,
} from "../helpers/volume_steps.ts";

const GiB = 1024 ** 3;
/** Where the block test writes its pattern: past the first megabytes, not block-aligned. */
const BLOCK_OFFSET = 300 * 1024 * 1024 + 4096;

for (const kind of ["ext4", "xfs", "btrfs", "block"] as const) {
  Deno.test(`node lifecycle (${kind}): data survives unstage and restage; nothing leaks`, async () => {
    await withNodeEnvironment(async (env) => {
      await wholeLife(env, kind);
    });
  });
}

async function wholeLife(env: NodeEnvironment, kind: AccessKind): Promise<void> {
  const node = env.node.client.node;
  const name = `pvc-life-${kind}`;
  const volume = await createVolume(env.controller.client, { name, kind, sizeBytes: GiB });
  const req = nodeRequests(volume, { kind, kubeletDir: env.kubeletDir });
  const data = randomBytes(256 * 1024 + 17);
  const dataPath = join(req.target, "data.bin");

  await node.NodeStageVolume(req.stage);
  const first = await readVolumeState(env, name);
  assert.equal(first?.phase, "staged");
  await node.NodePublishVolume(req.publish);
  if (kind === "block") await writeAtOffset(req.target, BLOCK_OFFSET, data);
  else await writeFileSynced(dataPath, data);
  await node.NodeUnpublishVolume(req.unpublish);
  await assert.rejects(Deno.lstat(req.target), Deno.errors.NotFound);
  let processes = await volumeProcesses(env, name);
  const names = processes.map((p) => p.argv[0].split("/").pop());
  assert.deepEqual(names.sort(), ["nbdfuse", "zerofs"], "ZeroFS and the userspace attach helper");
  // The leak check sees a staged volume (so its empty answer after unstage means something).
  const staged = await findLeftovers(env);
  assert.equal(staged.loopDevices.length, 1, staged.loopDevices.join());
  assert.equal(staged.mounts.length, kind === "block" ? 1 : 2, staged.mounts.join());
  assert.ok(staged.processes.length >= 2, staged.processes.join("\n"));
  assert.equal(staged.sockets.length, 2, staged.sockets.join());
  await node.NodeUnstageVolume(req.unstage);
  await assertNothingLeft(env, processes);

  await node.NodeStageVolume(req.stage);
  await node.NodePublishVolume(req.publish);
  if (kind === "block") {
    assert.ok((await Deno.stat(req.target)).isBlockDevice, `${req.target} is a block device`);
    await assertContent(req.target, data, BLOCK_OFFSET);
  } else {
    const mount = await findMountByTarget(req.staging);
    assert.equal(mount?.fsType, kind);
    await assertContent(dataPath, data);
  }
  await node.NodeUnpublishVolume(req.unpublish);
  processes = await volumeProcesses(env, name);
  await node.NodeUnstageVolume(req.unstage);
  await assertNothingLeft(env, processes);
  await env.controller.client.controller.DeleteVolume({ volume_id: name });
}

Deno.test("node: every call twice is idempotent; readonly publish is ro over a rw staging", async () => {
  await withNodeEnvironment(async (env) => {
    const node = env.node.client.node;
    const name = "pvc-twice";
    const volume = await createVolume(env.controller.client, {
      name,
      kind: "ext4",
      sizeBytes: GiB,
    });
    const req = nodeRequests(volume, { kind: "ext4", kubeletDir: env.kubeletDir });

    await node.NodeStageVolume(req.stage);
    const staged = await readVolumeState(env, name);
    const zerofs = await volumeProcesses(env, name);
    await node.NodeStageVolume(req.stage);
    const again = await readVolumeState(env, name);
    assert.deepEqual(withoutTime(again), withoutTime(staged));
    assert.deepEqual(
      (await volumeProcesses(env, name)).map((p) => p.pid).sort(),
      zerofs.map((p) => p.pid).sort(),
      "the second stage started nothing new",
    );

    await node.NodePublishVolume(req.publish);
    const published = await readVolumeState(env, name);
    await node.NodePublishVolume(req.publish);
    assert.deepEqual(withoutTime(await readVolumeState(env, name)), withoutTime(published));
    assert.deepEqual(published?.publishedTargets, [{ path: req.target, readOnly: false }]);
    assert.equal(await mountCount(req.target), 1, "publish twice stacks no second bind mount");
    await writeFileSynced(join(req.target, "twice.txt"), new TextEncoder().encode("twice"));

    await node.NodeUnpublishVolume(req.unpublish);
    await node.NodeUnpublishVolume(req.unpublish);
    assert.deepEqual((await readVolumeState(env, name))?.publishedTargets, []);
    assert.equal(await mountCount(req.target), 0);

    const ro = nodeRequests(volume, {
      kind: "ext4",
      kubeletDir: env.kubeletDir,
      readonly: true,
      target: join(env.kubeletDir, "pods/pod-ro/volumes", name),
    });
    await node.NodePublishVolume(ro.publish);
    await node.NodePublishVolume(ro.publish);
    const target = await findMountByTarget(ro.target);
    const staging = await findMountByTarget(req.staging);
    assert.ok(target?.options.includes("ro"), `target options ${target?.options}`);
    assert.ok(staging?.options.includes("rw"), `staging options ${staging?.options}`);
    assert.equal(await Deno.readTextFile(join(ro.target, "twice.txt")), "twice");
    const refused = await Deno.writeTextFile(join(ro.target, "nope.txt"), "x").then(
      () => undefined,
      (e) => e,
    );
    assert.ok(refused instanceof Error, "a write on the read-only target must fail");
    assert.equal((refused as { code?: string }).code, "EROFS");
    await writeFileSynced(join(req.staging, "staging-rw.txt"), new TextEncoder().encode("rw"));
    await node.NodeUnpublishVolume(ro.unpublish);
    await node.NodeUnpublishVolume(ro.unpublish);

    const processes = await volumeProcesses(env, name);
    await node.NodeUnstageVolume(req.unstage);
    await node.NodeUnstageVolume(req.unstage);
    await assertNothingLeft(env, processes);
  });
});

Deno.test("node: NodeGetInfo reports the node id and a device limit", async () => {
  await withNodeEnvironment(async (env) => {
    const info = await env.node.client.node.NodeGetInfo({});
    assert.equal(info.node_id, "test-node");
    assert.ok(Number(info.max_volumes_per_node) > 0, `max ${info.max_volumes_per_node}`);
  });
});

function withoutTime<T extends { updatedAt?: string }>(state: T | null) {
  if (!state) return state;
  const { updatedAt: _, ...rest } = state;
  return rest;
}

async function mountCount(target: string): Promise<number> {
  const text = await Deno.readTextFile("/proc/self/mountinfo");
  return text.split("\n").filter((l) => l.split(" ")[4] === target).length;
}
