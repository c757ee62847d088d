/**
 * A volume's whole life with the kernel attacher, for each access kind —
 * the host's node lifecycle test (tests/integration/node_lifecycle_test.ts)
 * on a real `/dev/nbdK`: create → stage → publish → write → unpublish →
 * unstage (device free) → stage → data intact → unstage (device free) → delete.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { findMountByTarget } from "../../blockdev/mod.ts";
import { volumeProcesses } from "../helpers/node_env.ts";
import {
  type AccessKind,
  assertContent,
  createVolume,
  randomBytes,
  writeAtOffset,
  writeFileSynced,
} from "../helpers/volume_steps.ts";
import { deviceMajor, NBD_MAJOR } from "./kernel_state.ts";
import { GiB, type Scenario } from "./scenario.ts";

/** Where the block test writes its pattern: past the first megabytes, not block-aligned. */
const BLOCK_OFFSET = 300 * 1024 * 1024 + 4096;
/** Publish, unpublish and delete do not start processes. */
const CALL_MS_PUBLISH = 60_000;

/** The lifecycle of one `kind` volume. */
export async function lifecycle(s: Scenario, kind: AccessKind): Promise<void> {
  const name = `pvc-vm-life-${kind}`;
  const volume = await createVolume(s.env.controller.client, { name, kind, sizeBytes: GiB });
  const req = s.requests(volume, kind);
  const data = randomBytes(256 * 1024 + 17);
  const dataPath = join(req.target, "data.bin");

  const first = await s.stage(req);
  await s.node.NodePublishVolume(req.publish, CALL_MS_PUBLISH);
  if (kind === "block") {
    const target = await Deno.stat(req.target);
    assert.ok(target.isBlockDevice, `${req.target} is a block device`);
    assert.equal(deviceMajor(target.rdev!), NBD_MAJOR, "the target is an nbd device node");
    await writeAtOffset(req.target, BLOCK_OFFSET, data);
  } else {
    assert.equal((await findMountByTarget(req.target))?.source, first);
    await writeFileSynced(dataPath, data);
  }
  await s.node.NodeUnpublishVolume(req.unpublish, CALL_MS_PUBLISH);
  const processes = await volumeProcesses(s.env, name);
  // The kernel keeps the NBD connection: ZeroFS is the volume's only process.
  assert.deepEqual(processes.map((p) => p.argv[0].split("/").pop()), ["zerofs"]);
  await s.unstage(req, first, processes);

  const second = await s.stage(req);
  await s.node.NodePublishVolume(req.publish, CALL_MS_PUBLISH);
  if (kind === "block") await assertContent(req.target, data, BLOCK_OFFSET);
  else {
    assert.equal((await findMountByTarget(req.staging))?.fsType, kind);
    await assertContent(dataPath, data);
  }
  await s.node.NodeUnpublishVolume(req.unpublish, CALL_MS_PUBLISH);
  await s.unstage(req, second, await volumeProcesses(s.env, name));
  await s.env.controller.client.controller.DeleteVolume({ volume_id: name }, CALL_MS_PUBLISH);
  s.facts.devices = [first, second];
}
