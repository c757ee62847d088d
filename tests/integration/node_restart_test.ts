/**
 * The node agent killed and restarted: a stage interrupted between attach
 * and mount resumes on the same device without a format; an idle staged and
 * published volume keeps working across the restart; and when its nbdfuse
 * dies with it (a container restart in userspace mode) the volume reports
 * abnormal and unstage + stage bring it back with its data.
 *
 * Run as root: `deno test -A tests/integration/node_restart_test.ts`.
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

Deno.test("node restart: killed between attach and mount → same device, no reformat", async () => {
  await withNodeEnvironment(async (env) => {
    const name = "pvc-crash-mid-stage";
    const volume = await createVolume(env.controller.client, {
      name,
      kind: "ext4",
      sizeBytes: GiB,
    });
    const req = nodeRequests(volume, { kind: "ext4", kubeletDir: env.kubeletDir });
    await env.node.client.node.NodeStageVolume(req.stage);
    assert.equal(formatLines(env.node.output(), name).length, 1, "the first stage formats");
    const data = randomBytes(100_000);
    await writeFileSynced(join(req.staging, "before-crash.bin"), data);
    const before = await readVolumeState(env, name);
    assert.ok(before?.attachment?.device);
    const loopsBefore = (await findLeftovers(env)).loopDevices;
    assert.equal(loopsBefore.length, 1);

    // The agent dies; what it left is an attached device with no mount on it,
    // which is exactly the state between attach and mount of a stage.
    await killNode(env);
    const umount = await new Deno.Command("umount", { args: [req.staging] }).output();
    assert.equal(umount.code, 0, new TextDecoder().decode(umount.stderr));
    assert.equal(await findMountByTarget(req.staging), undefined);
    await env.restartNode();

    await env.node.client.node.NodeStageVolume(req.stage);
    const after = await readVolumeState(env, name);
    assert.equal(after?.phase, "staged");
    assert.deepEqual(after?.attachment, before.attachment, "the same device and helper");
    assert.deepEqual((await findLeftovers(env)).loopDevices, loopsBefore, "no second device");
    assert.equal((await findMountByTarget(req.staging))?.source, before.attachment.device);
    assert.deepEqual(formatLines(env.node.output(), name), [], "no mkfs after the restart");
    await assertContent(join(req.staging, "before-crash.bin"), data);

    const processes = await volumeProcesses(env, name);
    await env.node.client.node.NodeUnstageVolume(req.unstage);
    await assertNothingLeft(env, processes);
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
