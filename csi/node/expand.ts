/**
 * NodeExpandVolume (offline): the NBD device's size is fixed per connection,
 * so growing means unmount → detach → grow the device file through 9P →
 * attach → mount → grow the filesystem. Refused while a pod has the volume
 * published.
 *
 * @module
 */

import {
  deviceSizeBytes,
  findMountByTarget,
  growFilesystem,
  mountFilesystem,
  unmount,
} from "../../blockdev/mod.ts";
import { volumePaths } from "../../zerofs/mod.ts";
import { failedPrecondition, invalidArgument, outOfRange } from "../errors.ts";
import { parseAbsolutePath, parseVolumeId } from "../validate.ts";
import type { NodeContext } from "./context.ts";
import type { RawRequest } from "./requests.ts";
import type { NodeVolumeState } from "./state.ts";
import { growDeviceFile } from "./volume_files.ts";

const ROUNDING_BYTES = 4096;

/** NodeExpandVolume. */
export async function nodeExpandVolume(ctx: NodeContext, req: RawRequest): Promise<object> {
  const volumeId = parseVolumeId(req.volume_id, "volume_id");
  parseAbsolutePath(req.volume_path, "volume_path");
  const requiredBytes = requiredSize(req);
  const state = await ctx.states.read(volumeId);
  if (state?.phase !== "staged" || !state.attachment) {
    throw failedPrecondition(`volume "${volumeId}" is not staged on this node; stage it first`);
  }
  let sizeBytes = await deviceSizeBytes(state.attachment.device);
  if (sizeBytes < requiredBytes) {
    await requireUnpublished(state);
    if (state.readOnly) {
      throw failedPrecondition(`volume "${volumeId}" is staged read-only and cannot grow`);
    }
    sizeBytes = await regrowDevice(ctx, state, requiredBytes);
  }
  if (state.accessType === "mount") {
    await growFilesystem(state.fsType!, {
      device: (await ctx.states.read(volumeId))!.attachment!.device,
      mountPoint: state.stagingPath,
    });
  }
  return { capacity_bytes: sizeBytes };
}

function requiredSize(req: RawRequest): number {
  const required = Number(req.capacity_range?.required_bytes ?? 0);
  const limit = Number(req.capacity_range?.limit_bytes ?? 0);
  if (!(required > 0)) throw invalidArgument("capacity_range.required_bytes is required");
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
): Promise<number> {
  const paths = volumePaths(ctx.stateRoot, state.volumeId);
  if (state.accessType === "mount") await unmount(state.stagingPath);
  await ctx.attacher.detach(state.attachment!);
  const detached: NodeVolumeState = { ...state, phase: "staging", attachment: undefined };
  await ctx.states.write(detached);
  await growDeviceFile(paths.ninepSocket, requiredBytes);
  const attachment = await ctx.attacher.attach(
    {
      volumeId: state.volumeId,
      socketPath: paths.nbdSocket,
      exportName: "disk",
      readOnly: false,
      workDir: paths.dir,
    },
    (intent) => ctx.states.write({ ...detached, attachment: intent }),
  );
  if (state.accessType === "mount") {
    await mountFilesystem(attachment.device, state.stagingPath, {
      fsType: state.fsType!,
      flags: state.mountFlags,
      readOnly: false,
    });
  }
  await ctx.states.write({ ...detached, attachment, phase: "staged" });
  return await deviceSizeBytes(attachment.device);
}
