/**
 * NodeGetVolumeStats (usage, and the condition when ZeroFS dies) and
 * NodeExpandVolume (offline growth of a staged volume).
 *
 * Run as root: `deno test -A tests/integration/node_stats_expand_test.ts`.
 */

import assert from "node:assert/strict";
import { statfs } from "node:fs/promises";
import { status } from "@grpc/grpc-js";
import { join } from "node:path";
import {
  assertNothingLeft,
  isStillRunning,
  readVolumeState,
  volumeProcesses,
  withNodeEnvironment,
  zerofsPid,
} from "../helpers/node_env.ts";
import {
  assertContent,
  capabilityFor,
  createVolume,
  expectCode,
  nodeRequests,
  randomBytes,
  writeFileSynced,
} from "../helpers/volume_steps.ts";

const GiB = 1024 ** 3;
/** Every call of a test on a dead server is bounded by this. */
const CALL_BOUND_MS = 120_000;

interface Usage {
  unit: string;
  total: string | number;
  used?: string | number;
  available?: string | number;
}

Deno.test("stats: usage of a healthy volume, abnormal once its ZeroFS is killed", async () => {
  await withNodeEnvironment(async (env) => {
    const node = env.node.client.node;
    const name = "pvc-stats";
    const volume = await createVolume(env.controller.client, {
      name,
      kind: "ext4",
      sizeBytes: GiB,
    });
    const req = nodeRequests(volume, { kind: "ext4", kubeletDir: env.kubeletDir });
    await node.NodeStageVolume(req.stage);
    await node.NodePublishVolume(req.publish);
    await writeFileSynced(join(req.target, "some.bin"), randomBytes(1024 * 1024));

    for (const path of [req.target, req.staging]) {
      const stats = await node.NodeGetVolumeStats({ volume_id: name, volume_path: path });
      assert.equal(stats.volume_condition.abnormal, false, stats.volume_condition.message);
      const bytes = (stats.usage as Usage[]).find((u) => u.unit === "BYTES")!;
      const inodes = (stats.usage as Usage[]).find((u) => u.unit === "INODES")!;
      const total = Number(bytes.total);
      assert.ok(total > 0.8 * GiB && total <= GiB, `total ${total}`);
      assert.ok(Number(bytes.used) >= 1024 * 1024, `used ${bytes.used}`);
      assert.ok(Number(bytes.available) > 0 && Number(bytes.available) < total);
      assert.ok(Number(inodes.total) > 1000, `inodes ${inodes.total}`);
      assert.ok(Number(inodes.used) > 10 && Number(inodes.used) < Number(inodes.total));
    }

    const processes = await volumeProcesses(env, name);
    const pid = await zerofsPid(env, name);
    Deno.kill(pid, "SIGKILL");
    const standin = processes.find((p) => p.pid === pid)!;
    while (await isStillRunning(standin)) await new Promise((r) => setTimeout(r, 50));

    const sick = await node.NodeGetVolumeStats(
      { volume_id: name, volume_path: req.target },
      CALL_BOUND_MS,
    );
    assert.equal(sick.volume_condition.abnormal, true);
    assert.match(sick.volume_condition.message, /ZeroFS/);

    await node.NodeUnpublishVolume(req.unpublish, CALL_BOUND_MS);
    await node.NodeUnstageVolume(req.unstage, CALL_BOUND_MS);
    await assertNothingLeft(env, processes);
  });
});

Deno.test("expand: offline growth of a staged ext4 volume; refused while published", async () => {
  await withNodeEnvironment(async (env) => {
    const node = env.node.client.node;
    const controller = env.controller.client.controller;
    const name = "pvc-expand";
    const volume = await createVolume(env.controller.client, {
      name,
      kind: "ext4",
      sizeBytes: GiB,
    });
    const req = nodeRequests(volume, { kind: "ext4", kubeletDir: env.kubeletDir });
    await node.NodeStageVolume(req.stage);
    const data = randomBytes(300_000);
    await writeFileSynced(join(req.staging, "keep.bin"), data);
    const sizeBefore = await filesystemBytes(req.staging);
    assert.ok(sizeBefore <= GiB, `${sizeBefore}`);

    const grown = await controller.ControllerExpandVolume({
      volume_id: name,
      capacity_range: { required_bytes: 2 * GiB },
      volume_capability: capabilityFor("ext4"),
    });
    assert.equal(Number(grown.capacity_bytes), 2 * GiB);
    assert.equal(grown.node_expansion_required, true);
    const expandRequest = (bytes: number) => ({
      volume_id: name,
      volume_path: req.staging,
      staging_target_path: req.staging,
      capacity_range: { required_bytes: bytes },
      volume_capability: capabilityFor("ext4"),
    });
    const res = await node.NodeExpandVolume(expandRequest(2 * GiB), CALL_BOUND_MS);
    assert.equal(Number(res.capacity_bytes), 2 * GiB);
    const sizeAfter = await filesystemBytes(req.staging);
    assert.ok(sizeAfter > 1.8 * GiB && sizeAfter <= 2 * GiB, `df size ${sizeAfter}`);
    await assertContent(join(req.staging, "keep.bin"), data);
    // The same request again is a no-op.
    const again = await node.NodeExpandVolume(expandRequest(2 * GiB), CALL_BOUND_MS);
    assert.equal(Number(again.capacity_bytes), 2 * GiB);

    await node.NodePublishVolume(req.publish);
    await controller.ControllerExpandVolume({
      volume_id: name,
      capacity_range: { required_bytes: 3 * GiB },
      volume_capability: capabilityFor("ext4"),
    });
    await expectCode(
      node.NodeExpandVolume(expandRequest(3 * GiB), CALL_BOUND_MS),
      status.FAILED_PRECONDITION,
      /in use/,
    );
    assert.equal(await filesystemBytes(req.target), sizeAfter, "nothing changed");
    await assertContent(join(req.target, "keep.bin"), data);

    const processes = await volumeProcesses(env, name);
    await node.NodeUnpublishVolume(req.unpublish);
    await node.NodeUnstageVolume(req.unstage);
    await assertNothingLeft(env, processes);
  });
});

Deno.test("expand (the spec's OFFLINE flow): controller expands, the next stage grows device and filesystem", async () => {
  await withNodeEnvironment(async (env) => {
    const node = env.node.client.node;
    const controller = env.controller.client.controller;
    const name = "pvc-offline-grow";
    const volume = await createVolume(env.controller.client, {
      name,
      kind: "ext4",
      sizeBytes: GiB,
    });
    const req = nodeRequests(volume, { kind: "ext4", kubeletDir: env.kubeletDir });
    const publish = (extra: Record<string, unknown> = {}) =>
      controller.ControllerPublishVolume({
        volume_id: name,
        node_id: "test-node",
        volume_capability: capabilityFor("ext4"),
        readonly: false,
        ...extra,
      });
    const first = await publish();
    assert.equal(first.publish_context.capacityBytes, String(GiB));
    await node.NodeStageVolume({ ...req.stage, publish_context: first.publish_context });
    const data = randomBytes(200_000);
    await writeFileSynced(join(req.staging, "keep.bin"), data);
    await node.NodeUnstageVolume(req.unstage);
    await controller.ControllerUnpublishVolume({ volume_id: name, node_id: "test-node" });

    await controller.ControllerExpandVolume({
      volume_id: name,
      capacity_range: { required_bytes: 2 * GiB },
    });
    const again = await publish();
    assert.equal(again.publish_context.capacityBytes, String(2 * GiB));
    await node.NodeStageVolume({ ...req.stage, publish_context: again.publish_context });
    const size = await filesystemBytes(req.staging);
    assert.ok(size > 1.8 * GiB && size <= 2 * GiB, `df size ${size} after the stage`);
    assert.equal((await readVolumeState(env, name))?.fsGrowPending, false);
    await node.NodePublishVolume(req.publish);
    // Published, and already the size asked for: NodeExpandVolume has nothing left to do.
    const res = await node.NodeExpandVolume({
      volume_id: name,
      volume_path: req.target,
      capacity_range: { required_bytes: 2 * GiB },
    }, CALL_BOUND_MS);
    assert.equal(Number(res.capacity_bytes), 2 * GiB);
    await assertContent(join(req.target, "keep.bin"), data);
    await node.NodeUnpublishVolume(req.unpublish);
    await node.NodeUnstageVolume(req.unstage);
    await controller.ControllerUnpublishVolume({ volume_id: name, node_id: "test-node" });
    await assertNothingLeft(env);
  });
});

async function filesystemBytes(path: string): Promise<number> {
  const s = await statfs(path);
  return s.blocks * s.bsize;
}
