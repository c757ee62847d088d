/**
 * "Never format twice" through the CSI API: a volume holding ext4 is never
 * reformatted as something else, and a volume without a zerofs-csi record
 * (made by the original Go driver) is adopted, not formatted.
 *
 * Run as root: `deno test -A tests/integration/node_format_once_test.ts`.
 */

import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import { join } from "node:path";
import { locateStore } from "../fixtures/zerofs_standin/store.ts";
import {
  assertNothingLeft,
  type NodeEnvironment,
  readVolumeState,
  volumeProcesses,
  withNodeEnvironment,
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

/** The volume record inside the stand-in's copy of the volume's filesystem. */
function recordPath(env: NodeEnvironment, volumeId: string): string {
  const store = locateStore(`s3://zerofs-test/volumes/${volumeId}`, join(env.dir, "store"));
  return join(store.dataDir, ".zerofs-csi.json");
}

function formatCount(env: NodeEnvironment, volumeId: string): number {
  return env.node.output().split("\n").filter((l) =>
    l.includes("formatting new volume") && l.includes(volumeId)
  ).length;
}

Deno.test("format once: ext4 volume staged as xfs is refused; legacy volume adopted", async () => {
  await withNodeEnvironment(async (env) => {
    const node = env.node.client.node;
    const name = "pvc-format-once";
    const volume = await createVolume(env.controller.client, {
      name,
      kind: "ext4",
      sizeBytes: GiB,
    });
    const req = nodeRequests(volume, { kind: "ext4", kubeletDir: env.kubeletDir });
    const data = randomBytes(200_000);
    const dataPath = join(req.staging, "keep.bin");

    await node.NodeStageVolume(req.stage);
    await writeFileSynced(dataPath, data);
    let processes = await volumeProcesses(env, name);
    await node.NodeUnstageVolume(req.unstage);
    await assertNothingLeft(env, processes);
    assert.equal(formatCount(env, name), 1);
    const record = JSON.parse(await Deno.readTextFile(recordPath(env, name)));
    assert.equal(record.fsType, "ext4");
    assert.equal(record.formatted, true);

    // The same volume (same name → same volume) asked for as xfs.
    const again = await createVolume(env.controller.client, {
      name,
      kind: "ext4",
      sizeBytes: GiB,
    });
    assert.equal(again.volume_id, name);
    await expectCode(
      node.NodeStageVolume({ ...req.stage, volume_capability: capabilityFor("xfs") }),
      status.FAILED_PRECONDITION,
      /ext4/,
    );
    await assertNothingLeft(env);
    assert.equal(formatCount(env, name), 1, "no mkfs for the refused stage");

    await node.NodeStageVolume(req.stage);
    await assertContent(dataPath, data);
    processes = await volumeProcesses(env, name);
    await node.NodeUnstageVolume(req.unstage);
    await assertNothingLeft(env, processes);

    // A volume of the original Go driver has a filesystem but no record.
    await Deno.remove(recordPath(env, name));
    await node.NodeStageVolume(req.stage);
    assert.equal((await readVolumeState(env, name))?.phase, "staged");
    await assertContent(dataPath, data);
    assert.equal(formatCount(env, name), 1, "adopted, not formatted");
    processes = await volumeProcesses(env, name);
    await node.NodeUnstageVolume(req.unstage);
    await assertNothingLeft(env, processes);
    const written = JSON.parse(await Deno.readTextFile(recordPath(env, name)));
    assert.equal(written.fsType, "ext4");
    assert.equal(written.formatted, true);
  });
});
