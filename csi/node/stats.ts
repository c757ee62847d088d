/**
 * NodeGetVolumeStats: usage of a staged or published path, and the volume's
 * condition — abnormal, with the reason, when ZeroFS is not ready or can no
 * longer write (fenced by a writer on another node), the device is
 * disconnected, or the mount is gone or read-only when it should not be.
 *
 * @module
 */

import {
  deviceSizeBytes,
  findMountByTarget,
  fsStats,
  type MountEntry,
} from "../../blockdev/mod.ts";
import { type InstanceStatus, probeWritable, volumePaths } from "../../zerofs/mod.ts";
import { notFound } from "../errors.ts";
import { parseRequiredString, parseVolumeId } from "../validate.ts";
import type { NodeContext } from "./context.ts";
import type {
  NodeGetVolumeStatsRequest__Output,
  NodeGetVolumeStatsResponse,
  VolumeUsage,
} from "../messages/mod.ts";
import type { NodeVolumeState } from "./state.ts";

/** Linux PATH_MAX. */
export const MAX_PATH_BYTES = 4096;

/** A volume's health as CSI reports it. */
export interface VolumeCondition {
  abnormal: boolean;
  message: string;
}

/**
 * NodeGetVolumeStats. A volume_path that is not where this node staged or
 * published the volume is NOT_FOUND (the spec's "volume does not exist on the
 * specified path"), a relative one included: it can never be such a path.
 */
export async function nodeGetVolumeStats(
  ctx: NodeContext,
  req: NodeGetVolumeStatsRequest__Output,
): Promise<NodeGetVolumeStatsResponse> {
  const volumeId = parseVolumeId(req.volume_id, "volume_id");
  const volumePath = parseRequiredString(req.volume_path, "volume_path", MAX_PATH_BYTES);
  const state = await ctx.states.read(volumeId);
  const known = state &&
    (state.stagingPath === volumePath || state.publishedTargets.some((t) => t.path === volumePath));
  if (!state || !known) {
    throw notFound(`volume "${volumeId}" is not staged or published at ${volumePath}`);
  }
  const condition = await volumeCondition(ctx, state, { probeWrites: true });
  const usage = await usageOf(state, volumePath).catch((e) => {
    condition.abnormal = true;
    condition.message += `; usage unavailable: ${(e as Error).message}`;
    return [];
  });
  return { usage, volume_condition: condition };
}

async function usageOf(state: NodeVolumeState, volumePath: string): Promise<VolumeUsage[]> {
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

/** How far {@linkcode volumeHealth} looks. */
export interface HealthOptions {
  /**
   * Also prove that ZeroFS can still write (a durable write through 9P):
   * the only check that sees a writer fenced by another node at once. It
   * costs one small object-store write, so the CSI health path asks for it,
   * the metrics scrape does not.
   */
  probeWrites?: boolean;
}

const WRITE_PROBE_TIMEOUT_MS = 15_000;

/** Observe ZeroFS, the device and the staging mount; shared with `status` and metrics. */
export async function volumeHealth(
  ctx: NodeContext,
  state: NodeVolumeState,
  opts: HealthOptions = {},
): Promise<VolumeHealth> {
  const problems: string[] = [];
  const paths = volumePaths(ctx.stateRoot, state.volumeId);
  const zerofs = await ctx.runner.status(state.volumeId, paths.dir);
  if (!zerofs.ready) problems.push(`ZeroFS is not ready (${zerofs.reason ?? "not running"})`);
  else if (opts.probeWrites && !state.readOnly) {
    const probe = await probeWritable(paths.ninepSocket, { timeoutMs: WRITE_PROBE_TIMEOUT_MS });
    if (!probe.writable) {
      problems.push(
        `ZeroFS can no longer write the volume (${probe.reason}); another node may have ` +
          `staged it, which fences this one: unpublish and unstage it here`,
      );
    }
  }
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
  opts: HealthOptions = {},
): Promise<VolumeCondition> {
  return (await volumeHealth(ctx, state, opts)).condition;
}
