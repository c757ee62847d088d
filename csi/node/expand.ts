/**
 * NodeExpandVolume (offline). The NBD device's size is fixed per connection,
 * so growing it means: unmount → detach → grow the device file through 9P →
 * attach → grow the filesystem → mount. ext4 grows while unmounted (after
 * e2fsck); xfs and btrfs can only grow mounted. Refused while a pod has the
 * volume published. Phase `expanding` (with the size to reach) is recorded
 * before the first effect, and every step after it checks what is already
 * done: the retried call, or the agent's recovery at start, finishes an
 * expansion a crash interrupted (an expansion is never reversed: the device
 * file only grows).
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
import { roundUpToBlock } from "../capacity.ts";
import { failedPrecondition, notFound, outOfRange } from "../errors.ts";
import { failpoint } from "../failpoints.ts";
import { parseRequiredString, parseVolumeId } from "../validate.ts";
import type { NodeContext } from "./context.ts";
import type { NodeExpandVolumeRequest__Output } from "../messages/mod.ts";
import type { NodeVolumeState } from "./state.ts";
import { MAX_PATH_BYTES } from "./stats.ts";
import { DEVICE_EXPORT, growDeviceFile } from "./volume_files.ts";

/** NodeExpandVolume. */
export async function nodeExpandVolume(
  ctx: NodeContext,
  req: NodeExpandVolumeRequest__Output,
): Promise<object> {
  const volumeId = parseVolumeId(req.volume_id, "volume_id");
  const volumePath = parseRequiredString(req.volume_path, "volume_path", MAX_PATH_BYTES);
  let state = await ctx.states.read(volumeId);
  const known = state &&
    (state.stagingPath === volumePath || state.publishedTargets.some((t) => t.path === volumePath));
  if (!state || !known) {
    throw notFound(`volume "${volumeId}" is not staged or published at ${volumePath} on this node`);
  }
  const requiredBytes = requiredSize(req);
  if (state.phase === "expanding") state = await finishExpansion(ctx, state);
  if (state.phase !== "staged" || !state.attachment) {
    throw failedPrecondition(`volume "${volumeId}" is not staged on this node; stage it first`);
  }
  const sizeBytes = await deviceSizeBytes(state.attachment.device);
  if (sizeBytes >= requiredBytes && !state.fsGrowPending) return { capacity_bytes: sizeBytes };
  await requireUnpublished(state);
  if (state.readOnly) {
    throw failedPrecondition(`volume "${volumeId}" is staged read-only and cannot grow`);
  }
  const expanding: NodeVolumeState = {
    ...state,
    phase: "expanding",
    expansion: { requiredBytes: Math.max(requiredBytes, sizeBytes) },
    fsGrowPending: state.accessType === "mount",
  };
  await ctx.states.write(expanding);
  failpoint("expand.after-intent");
  const done = await finishExpansion(ctx, expanding);
  return { capacity_bytes: await deviceSizeBytes(done.attachment!.device) };
}

/** The size asked for; 0 (no capacity_range) = the device's size, finishing a pending grow. */
function requiredSize(req: NodeExpandVolumeRequest__Output): number {
  const required = Number(req.capacity_range?.required_bytes ?? 0);
  const limit = Number(req.capacity_range?.limit_bytes ?? 0);
  if (!(required > 0)) return 0;
  const rounded = roundUpToBlock(required);
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

/**
 * Carry a volume in phase `expanding` to `staged`: unmount → reconnect the
 * export at the recorded size → grow the filesystem → mount. Each step
 * skips what a crashed earlier run already did; shared by the retried call,
 * a stage that finds the volume expanding, and the agent's recovery.
 */
export async function finishExpansion(
  ctx: NodeContext,
  expanding: NodeVolumeState,
): Promise<NodeVolumeState> {
  const requiredBytes = expanding.expansion?.requiredBytes ?? 0;
  let state = expanding;
  const mounted = state.accessType === "mount" && await findMountByTarget(state.stagingPath);
  const current = state.attachment && await ctx.attacher.isConnected(state.attachment) &&
    await deviceSizeBytes(state.attachment.device) >= requiredBytes;
  const growFs = state.accessType === "mount" && (!current || state.fsGrowPending === true);
  // ext4 grows only unmounted (online growth needs CAP_SYS_RESOURCE).
  if (mounted && (!current || (growFs && state.fsType === "ext4"))) {
    await unmount(state.stagingPath);
    failpoint("expand.after-unmount");
  }
  if (!current) state = await regrowDevice(ctx, state, requiredBytes);
  if (state.accessType === "mount") await growAndMount(state, growFs);
  const staged: NodeVolumeState = {
    ...state,
    phase: "staged",
    expansion: undefined,
    fsGrowPending: false,
  };
  await ctx.states.write(staged);
  return staged;
}

/** Reconnect the export at its new size, keeping the state record true at every step. */
async function regrowDevice(
  ctx: NodeContext,
  state: NodeVolumeState,
  requiredBytes: number,
): Promise<NodeVolumeState> {
  const paths = volumePaths(ctx.stateRoot, state.volumeId);
  let detached = state;
  if (state.attachment) {
    await ctx.attacher.detach(state.attachment);
    detached = { ...state, attachment: undefined };
    await ctx.states.write(detached);
    failpoint("expand.after-detach");
  }
  await growDeviceFile(paths.ninepSocket, requiredBytes);
  failpoint("expand.after-grow-file");
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
  failpoint("expand.after-attach");
  return attached;
}

/** Grow the filesystem to the device (ext4 before mounting, xfs and btrfs mounted) and mount it. */
async function growAndMount(state: NodeVolumeState, growFs: boolean): Promise<void> {
  const device = state.attachment!.device;
  const fsType = state.fsType!;
  const mounted = (await findMountByTarget(state.stagingPath))?.source === device;
  if (!mounted) {
    if (growFs && fsType === "ext4") await growExt4Offline(device);
    await mountFilesystem(device, state.stagingPath, {
      fsType,
      flags: state.mountFlags,
      readOnly: false,
    });
  }
  if (growFs && fsType !== "ext4") {
    await growFilesystem(fsType, { device, mountPoint: state.stagingPath });
  }
  failpoint("expand.after-mount");
}
