/**
 * "Never format twice" through the CSI API, on the real ZeroFS: a volume
 * holding ext4 is never reformatted as something else, and a volume without a
 * zerofs-csi record (made by the original Go driver) is adopted, not
 * formatted, and pinned to the original driver's ZeroFS release. A volume
 * last served by a newer ZeroFS is refused by an older one.
 *
 * Run as root: `deno test -A tests/integration/node_format_once_test.ts`.
 */

import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import { join } from "node:path";
import { ZEROFS_PINNED_VERSION } from "../fixtures/zerofs.ts";
import {
  assertNothingLeft,
  type NodeEnvironment,
  readVolumeState,
  volumeProcesses,
  withNodeEnvironment,
} from "../helpers/node_env.ts";
import { readRecordFile, withVolumeFs } from "../helpers/volume_fs.ts";
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

/** The volume record, read through a ZeroFS of its own (the volume must not be staged). */
function readRecord(env: NodeEnvironment, volumeId: string) {
  return withVolumeFs(env, volumeId, readRecordFile);
}

function removeRecord(env: NodeEnvironment, volumeId: string): Promise<void> {
  return withVolumeFs(env, volumeId, async (fs) => {
    await fs.withFid("/", (root) => fs.unlinkat(root, ".zerofs-csi.json"));
  });
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
    const record = (await readRecord(env, name))!;
    assert.equal(record.fsType, "ext4");
    assert.equal(record.formatted, true);
    assert.deepEqual(record.zerofs, {
      formattedBy: ZEROFS_PINNED_VERSION,
      servedBy: ZEROFS_PINNED_VERSION,
    });

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
    await removeRecord(env, name);
    assert.equal(await readRecord(env, name), null);
    await node.NodeStageVolume(req.stage);
    assert.equal((await readVolumeState(env, name))?.phase, "staged");
    await assertContent(dataPath, data);
    assert.equal(formatCount(env, name), 1, "adopted, not formatted");
    processes = await volumeProcesses(env, name);
    await node.NodeUnstageVolume(req.unstage);
    await assertNothingLeft(env, processes);
    const written = (await readRecord(env, name))!;
    assert.equal(written.fsType, "ext4");
    assert.equal(written.formatted, true);
    assert.deepEqual(written.zerofs, {
      formattedBy: "0.16.2", // the original driver's release, whatever runs it now
      servedBy: ZEROFS_PINNED_VERSION,
    });
  });
});

Deno.test("a volume last served by a newer ZeroFS is refused, naming both releases", async () => {
  await withNodeEnvironment(async (env) => {
    const node = env.node.client.node;
    const name = "pvc-pinned-newer";
    const volume = await createVolume(env.controller.client, {
      name,
      kind: "ext4",
      sizeBytes: GiB,
    });
    const req = nodeRequests(volume, { kind: "ext4", kubeletDir: env.kubeletDir });
    const data = randomBytes(50_000);
    await node.NodeStageVolume(req.stage);
    await writeFileSynced(join(req.staging, "keep.bin"), data);
    await node.NodeUnstageVolume(req.unstage);

    // As if a newer release of the same family had served it since.
    await withVolumeFs(env, name, async (fs) => {
      const record = (await readRecordFile(fs))!;
      const newer = {
        ...record,
        zerofs: { formattedBy: ZEROFS_PINNED_VERSION, servedBy: "0.99.0" },
      };
      await fs.writeFile("/.zerofs-csi.json", new TextEncoder().encode(JSON.stringify(newer)), {
        mode: 0o600,
      });
    });
    await expectCode(
      node.NodeStageVolume(req.stage),
      status.FAILED_PRECONDITION,
      new RegExp(`0\\.99\\.0.*older.*${ZEROFS_PINNED_VERSION.replaceAll(".", "\\.")}`),
    );
    await assertNothingLeft(env);
    assert.equal(formatCount(env, name), 1);
  });
});
