/**
 * NodeExpandVolume (offline). The NBD device's size is fixed per connection,
 * so growing it means: unmount → detach → grow the device file through 9P →
 * attach → grow the filesystem → mount. ext4 grows while unmounted (after
 * e2fsck); xfs and btrfs can only grow mounted. Refused while a pod has the
 * volume published. `fsGrowPending` in the state record makes a retry after
 * a crash finish the filesystem step.
 *
 * The driver advertises VolumeExpansion OFFLINE, and the CSI spec's flow for
 * it is: ControllerExpandVolume while unpublished, then stage, then
 * NodeExpandVolume (staged or published). That flow never needs a device
 * to grow under a pod: ControllerPublishVolume hands the current capacity to
 * NodeStageVolume (publish context), which attaches at that size and grows
 * the filesystem (stage.ts), so the call here finds the device big enough and
 * answers at once. Growing a published device (online) is refused: the NBD
 * connection would have to be replaced under the pod's open files.
 *
 * @module
 */

import {
  deviceSizeBytes,
  findMountByTarget,
  growExt4Offline,
  growFilesystem,
  mountFilesystem,
  unmount,
} from "../../blockdev/mod.ts";
import { volumePaths } from "../../zerofs/mod.ts";
import { failedPrecondition, notFound, outOfRange } from "../errors.ts";
import { parseRequiredString, parseVolumeId } from "../validate.ts";
import type { NodeContext } from "./context.ts";
import type { RawRequest } from "./requests.ts";
import type { NodeVolumeState } from "./state.ts";
import { MAX_PATH_BYTES } from "./stats.ts";
import { DEVICE_EXPORT, growDeviceFile } from "./volume_files.ts";

const ROUNDING_BYTES = 4096;

/** NodeExpandVolume. */
export async function nodeExpandVolume(ctx: NodeContext, req: RawRequest): Promise<object> {
  const volumeId = parseVolumeId(req.volume_id, "volume_id");
  const volumePath = parseRequiredString(req.volume_path, "volume_path", MAX_PATH_BYTES);
  let state = await ctx.states.read(volumeId);
  const known = state &&
    (state.stagingPath === volumePath || state.publishedTargets.some((t) => t.path === volumePath));
  if (!state || !known) {
    throw notFound(`volume "${volumeId}" is not staged or published at ${volumePath} on this node`);
  }
  if (state.phase !== "staged" || !state.attachment) {
    throw failedPrecondition(`volume "${volumeId}" is not staged on this node; stage it first`);
  }
  const requiredBytes = requiredSize(req);
  const sizeBytes = await deviceSizeBytes(state.attachment.device);
  if (sizeBytes >= requiredBytes && !state.fsGrowPending) return { capacity_bytes: sizeBytes };
  await requireUnpublished(state);
  if (state.readOnly) {
    throw failedPrecondition(`volume "${volumeId}" is staged read-only and cannot grow`);
  }
  if (state.accessType === "mount") await unmount(state.stagingPath);
  if (sizeBytes < requiredBytes) state = await regrowDevice(ctx, state, requiredBytes);
  if (state.accessType === "mount") await growAndMount(state);
  await ctx.states.write({ ...state, phase: "staged", fsGrowPending: false });
  return { capacity_bytes: await deviceSizeBytes(state.attachment!.device) };
}

/** The size asked for; 0 (no capacity_range) = the device's size, finishing a pending grow. */
function requiredSize(req: RawRequest): number {
  const required = Number(req.capacity_range?.required_bytes ?? 0);
  const limit = Number(req.capacity_range?.limit_bytes ?? 0);
  if (!(required > 0)) return 0;
  const rounded = Math.ceil(required / ROUNDING_BYTES) * ROUNDING_BYTES;
  if (limit > 0 && rounded > limit) {
    throw outOfRange(`required ${required} bytes rounds to ${rounded}, above limit ${limit}`);
  }
  return rounded;
}

async function requireUnpublished(state: NodeVolumeState): Promise<void> {
  for (const target of state.publishedTargets) {
    if (await findMountByTarget(target.path)) {
      throw failedPrecondition(
        `volume "${state.volumeId}" is in use at ${target.path}; this driver expands offline — ` +
          `stop the pod using it and retry`,
      );
    }
  }
}

/** Reconnect the export at its new size, keeping the state record true at every step. */
async function regrowDevice(
  ctx: NodeContext,
  state: NodeVolumeState,
  requiredBytes: number,
): Promise<NodeVolumeState> {
  const paths = volumePaths(ctx.stateRoot, state.volumeId);
  await ctx.attacher.detach(state.attachment!);
  const detached: NodeVolumeState = {
    ...state,
    phase: "staging",
    attachment: undefined,
    fsGrowPending: state.accessType === "mount",
  };
  await ctx.states.write(detached);
  await growDeviceFile(paths.ninepSocket, requiredBytes);
  const attachment = await ctx.attacher.attach(
    {
      volumeId: state.volumeId,
      socketPath: paths.nbdSocket,
      exportName: DEVICE_EXPORT,
      readOnly: false,
      workDir: paths.dir,
    },
    (intent) => ctx.states.write({ ...detached, attachment: intent }),
  );
  const attached = { ...detached, attachment };
  await ctx.states.write(attached);
  return attached;
}

async function growAndMount(state: NodeVolumeState): Promise<void> {
  const device = state.attachment!.device;
  const fsType = state.fsType!;
  if (fsType === "ext4") await growExt4Offline(device);
  await mountFilesystem(device, state.stagingPath, {
    fsType,
    flags: state.mountFlags,
    readOnly: false,
  });
  if (fsType !== "ext4") {
    await growFilesystem(fsType, { device, mountPoint: state.stagingPath });
  }
}
