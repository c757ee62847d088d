/**
 * What only the real ZeroFS and a real S3 server can show: the volume's data
 * is ZeroFS's objects under exactly the volume's prefix; DeleteVolume removes
 * them and nothing of a neighbour whose name extends it; data that reached
 * S3 (fsync → NBD FLUSH) survives a SIGKILL of ZeroFS, and the dead instance
 * is reported, never silently replaced under the mounted filesystem; and what
 * two nodes staging one volume do (ZeroFS fences the earlier writer).
 *
 * Run as root: `deno test -A tests/integration/real_zerofs_test.ts`.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { listBucketKeys } from "../helpers/bucket.ts";
import {
  assertNothingLeft,
  isStillRunning,
  type NodeEnvironment,
  readVolumeState,
  unstageRecordedVolumes,
  volumeProcesses,
  withNodeEnvironment,
  zerofsPid,
} from "../helpers/node_env.ts";
import {
  assertContent,
  createVolume,
  nodeRequests,
  randomBytes,
  writeFileSynced,
} from "../helpers/volume_steps.ts";

const GiB = 1024 ** 3;
const CALL_BOUND_MS = 120_000;

/** Stage a fresh ext4 volume, write `data` to keep.bin with fsync, unstage it. */
async function volumeWithData(env: NodeEnvironment, name: string, data: Uint8Array) {
  const volume = await createVolume(env.controller.client, { name, kind: "ext4", sizeBytes: GiB });
  const req = nodeRequests(volume, { kind: "ext4", kubeletDir: env.kubeletDir });
  await env.node.client.node.NodeStageVolume(req.stage);
  await writeFileSynced(join(req.staging, "keep.bin"), data);
  await env.node.client.node.NodeUnstageVolume(req.unstage);
  return req;
}

Deno.test("real ZeroFS: objects under exactly the volume's prefix; DeleteVolume spares pvc-10", async () => {
  await withNodeEnvironment(async (env) => {
    const listKeys = (prefix: string) => listBucketKeys(env.s3, "zerofs-test", prefix);
    const one = randomBytes(300_000);
    const ten = randomBytes(300_000);
    await volumeWithData(env, "pvc-1", one);
    const reqTen = await volumeWithData(env, "pvc-10", ten);

    const all = await listKeys("");
    assert.ok(all.length > 0, "ZeroFS wrote no objects");
    const outside = all.filter((k) =>
      !k.startsWith("volumes/pvc-1/") && !k.startsWith("volumes/pvc-10/")
    );
    assert.deepEqual(outside, [], "objects outside the two volumes' prefixes");
    assert.ok((await listKeys("volumes/pvc-1/")).length > 0);
    const tenKeys = await listKeys("volumes/pvc-10/");
    assert.ok(tenKeys.length > 0);

    await env.controller.client.controller.DeleteVolume({ volume_id: "pvc-1" });
    assert.deepEqual(await listKeys("volumes/pvc-1/"), []);
    assert.deepEqual(await listKeys("volumes/pvc-10/"), tenKeys);

    // The neighbour is whole: its filesystem mounts and holds its data.
    await env.node.client.node.NodeStageVolume(reqTen.stage);
    await assertContent(join(reqTen.staging, "keep.bin"), ten);
    await env.node.client.node.NodeUnstageVolume(reqTen.unstage);
    await env.controller.client.controller.DeleteVolume({ volume_id: "pvc-10" });
    assert.deepEqual(await listKeys("volumes/"), []);
    await assertNothingLeft(env);
  });
});

Deno.test("real ZeroFS: SIGKILL under a mounted volume → abnormal, no reconnect; flushed data survives", async () => {
  await withNodeEnvironment(async (env) => {
    const node = env.node.client.node;
    const name = "pvc-killed";
    const volume = await createVolume(env.controller.client, {
      name,
      kind: "ext4",
      sizeBytes: GiB,
    });
    const req = nodeRequests(volume, { kind: "ext4", kubeletDir: env.kubeletDir });
    const data = randomBytes(1_000_000);
    await node.NodeStageVolume(req.stage);
    await node.NodePublishVolume(req.publish);
    await writeFileSynced(join(req.target, "flushed.bin"), data);
    const device = (await readVolumeState(env, name))?.attachment?.device;

    const processes = await volumeProcesses(env, name);
    const pid = await zerofsPid(env, name);
    const zerofs = processes.find((p) => p.pid === pid)!;
    Deno.kill(pid, "SIGKILL");
    while (await isStillRunning(zerofs)) await new Promise((r) => setTimeout(r, 20));

    const sick = await node.NodeGetVolumeStats(
      { volume_id: name, volume_path: req.target },
      CALL_BOUND_MS,
    );
    assert.equal(sick.volume_condition.abnormal, true);
    assert.match(sick.volume_condition.message, /ZeroFS/);
    // Nothing restarted ZeroFS behind the mounted filesystem's back.
    assert.equal(await zerofsPid(env, name), pid);
    assert.equal((await readVolumeState(env, name))?.attachment?.device, device);

    await node.NodeUnpublishVolume(req.unpublish, CALL_BOUND_MS);
    await node.NodeUnstageVolume(req.unstage, CALL_BOUND_MS);
    await assertNothingLeft(env, processes);

    await node.NodeStageVolume(req.stage);
    await assertContent(join(req.staging, "flushed.bin"), data);
    await node.NodeUnstageVolume(req.unstage);
    await assertNothingLeft(env);
  });
});

/**
 * Two writers. Kubernetes (attachRequired) lets a second node stage a volume
 * only after the first lost it (a dead or partitioned node, force-detached);
 * a person with the CLI can do it by hand. ZeroFS fences the earlier writer
 * when the later one opens the volume. The driver's answer: the later stage
 * wins; the earlier node reports the volume abnormal at its next health check
 * (a durable write probe — its handshakes still pass from cache), its writes
 * fail with EIO instead of diverging, and it can still be unstaged cleanly.
 */
Deno.test("real ZeroFS: a second node staging the volume fences the first; never both healthy", async () => {
  await withNodeEnvironment(async (env) => {
    const name = "pvc-two-writers";
    const volume = await createVolume(env.controller.client, {
      name,
      kind: "ext4",
      sizeBytes: GiB,
    });
    const a = nodeRequests(volume, { kind: "ext4", kubeletDir: env.kubeletDir });
    const before = randomBytes(200_000);
    await env.node.client.node.NodeStageVolume(a.stage);
    await writeFileSynced(join(a.staging, "before.bin"), before);
    const healthOf = async (client: typeof env.node.client, staging: string) =>
      (await client.node.NodeGetVolumeStats(
        { volume_id: name, volume_path: staging },
        CALL_BOUND_MS,
      ))
        .volume_condition;
    assert.equal((await healthOf(env.node.client, a.staging)).abnormal, false);

    const other = await env.startOtherNode("node-b");
    try {
      const b = nodeRequests(volume, { kind: "ext4", kubeletDir: other.kubeletDir });
      await other.driver.client.node.NodeStageVolume(b.stage, CALL_BOUND_MS);
      await assertContent(join(b.staging, "before.bin"), before);

      const conditionA = await healthOf(env.node.client, a.staging);
      const conditionB = await healthOf(other.driver.client, b.staging);
      assert.equal(conditionB.abnormal, false, conditionB.message);
      assert.equal(conditionA.abnormal, true, "both nodes reported the volume healthy");
      // Either the probe's write failed or ZeroFS already fails its handshakes: both say so.
      assert.match(conditionA.message, /ZeroFS (can no longer write|is not ready)/);
      // The fenced writer's writes fail; they never land beside the new writer's.
      await assert.rejects(writeFileSynced(join(a.staging, "late.bin"), randomBytes(100_000)));

      await env.node.client.node.NodeUnstageVolume(a.unstage, CALL_BOUND_MS);
      assert.equal(await readVolumeState(env, name), null, "the fenced node unstaged cleanly");
      const after = randomBytes(200_000);
      await writeFileSynced(join(b.staging, "after.bin"), after);
      assert.equal((await healthOf(other.driver.client, b.staging)).abnormal, false);
      await other.driver.client.node.NodeUnstageVolume(b.unstage, CALL_BOUND_MS);
      await other.driver.stop();

      // Back on the first node: everything the winner wrote, nothing of the fenced write.
      await env.node.client.node.NodeStageVolume(a.stage);
      await assertContent(join(a.staging, "before.bin"), before);
      await assertContent(join(a.staging, "after.bin"), after);
      await assert.rejects(Deno.lstat(join(a.staging, "late.bin")), Deno.errors.NotFound);
      await env.node.client.node.NodeUnstageVolume(a.unstage);
      await assertNothingLeft(env);
    } finally {
      await unstageRecordedVolumes(other.driver.client, other.stateDir);
      await other.driver.stop();
    }
  });
});
