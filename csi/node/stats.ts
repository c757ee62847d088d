/**
 * NodeGetVolumeStats: usage of a staged or published path, and the volume's
 * condition — abnormal, with the reason, when ZeroFS is not ready, the device
 * is disconnected, or the mount is gone or read-only when it should not be.
 *
 * @module
 */

import {
  deviceSizeBytes,
  findMountByTarget,
  fsStats,
  type MountEntry,
} from "../../blockdev/mod.ts";
import { type InstanceStatus, volumePaths } from "../../zerofs/mod.ts";
import { notFound } from "../errors.ts";
import { parseAbsolutePath, parseVolumeId } from "../validate.ts";
import type { NodeContext } from "./context.ts";
import type { RawRequest } from "./requests.ts";
import type { NodeVolumeState } from "./state.ts";

/** A volume's health as CSI reports it. */
export interface VolumeCondition {
  abnormal: boolean;
  message: string;
}

/** NodeGetVolumeStats. */
export async function nodeGetVolumeStats(ctx: NodeContext, req: RawRequest): Promise<object> {
  const volumeId = parseVolumeId(req.volume_id, "volume_id");
  const volumePath = parseAbsolutePath(req.volume_path, "volume_path");
  const state = await ctx.states.read(volumeId);
  const known = state &&
    (state.stagingPath === volumePath || state.publishedTargets.some((t) => t.path === volumePath));
  if (!state || !known) {
    throw notFound(`volume "${volumeId}" is not staged or published at ${volumePath}`);
  }
  const condition = await volumeCondition(ctx, state);
  const usage = await usageOf(state, volumePath).catch((e) => {
    condition.abnormal = true;
    condition.message += `; usage unavailable: ${(e as Error).message}`;
    return [];
  });
  return { usage, volume_condition: condition };
}

async function usageOf(state: NodeVolumeState, volumePath: string): Promise<object[]> {
  if (state.accessType === "block") {
    const total = await deviceSizeBytes(state.attachment!.device);
    return [{ unit: "BYTES", total }];
  }
  const s = await fsStats(volumePath);
  return [
    { unit: "BYTES", total: s.totalBytes, used: s.usedBytes, available: s.availableBytes },
    { unit: "INODES", total: s.totalInodes, used: s.usedInodes, available: s.freeInodes },
  ];
}

/** The three things a staged volume stands on, as last observed. */
export interface VolumeHealth {
  zerofs: InstanceStatus;
  deviceConnected: boolean;
  /** Mount access: the staging mount, or null when it is gone. */
  stagingMount?: MountEntry | null;
  condition: VolumeCondition;
}

/** Observe ZeroFS, the device and the staging mount; shared with `status` and metrics. */
export async function volumeHealth(
  ctx: NodeContext,
  state: NodeVolumeState,
): Promise<VolumeHealth> {
  const problems: string[] = [];
  const paths = volumePaths(ctx.stateRoot, state.volumeId);
  const zerofs = await ctx.runner.status(state.volumeId, paths.dir);
  if (!zerofs.ready) problems.push(`ZeroFS is not ready (${zerofs.reason ?? "not running"})`);
  const deviceConnected = !!state.attachment && await ctx.attacher.isConnected(state.attachment);
  if (!deviceConnected) {
    problems.push(`device ${state.attachment?.device ?? "(none)"} is disconnected`);
  }
  let stagingMount: MountEntry | null | undefined;
  if (state.accessType === "mount") {
    stagingMount = await findMountByTarget(state.stagingPath);
    if (!stagingMount) problems.push(`staging mount ${state.stagingPath} is gone`);
    else if (!state.readOnly && stagingMount.options.includes("ro")) {
      problems.push(`staging mount ${state.stagingPath} turned read-only (I/O errors?)`);
    }
  }
  const condition = problems.length > 0
    ? { abnormal: true, message: problems.join("; ") }
    : { abnormal: false, message: "volume is healthy" };
  return { zerofs, deviceConnected, stagingMount, condition };
}

/** The CSI VolumeCondition of a staged volume. */
export async function volumeCondition(
  ctx: NodeContext,
  state: NodeVolumeState,
): Promise<VolumeCondition> {
  return (await volumeHealth(ctx, state)).condition;
}
