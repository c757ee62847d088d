/**
 * NodeUnstageVolume, strictly in order and each step verified before the
 * next: unmount → detach (device free) → stop ZeroFS (it flushes on SIGTERM)
 * → forget state. A failing step returns its error; nothing is skipped,
 * because disconnecting under a live mount loses data.
 *
 * @module
 */

import { findMountByTarget, unmount } from "../../blockdev/mod.ts";
import { volumePaths } from "../../zerofs/mod.ts";
import { failedPrecondition, internal } from "../errors.ts";
import { parseVolumeId } from "../validate.ts";
import type { NodeContext } from "./context.ts";
import { parseKubeletPath } from "./host_paths.ts";
import type { RawRequest } from "./requests.ts";
import type { NodeVolumeState } from "./state.ts";
import { StepClock } from "./step_clock.ts";

/** NodeUnstageVolume. */
export async function nodeUnstageVolume(ctx: NodeContext, req: RawRequest): Promise<object> {
  const volumeId = parseVolumeId(req.volume_id, "volume_id");
  const stagingPath = await parseKubeletPath(
    req.staging_target_path,
    "staging_target_path",
    ctx.kubeletDir,
  );
  const state = await ctx.states.read(volumeId);
  if (!state) return {};
  if (state.stagingPath !== stagingPath) {
    throw failedPrecondition(
      `volume "${volumeId}" is staged at ${state.stagingPath}, not at ${stagingPath}`,
    );
  }
  await rejectWhilePublished(state);
  await unstageVolume(ctx, state);
  return {};
}

/**
 * The ordered teardown, shared with the `detach` CLI verb. Each step
 * persists its result, so a retry after a failure resumes where it stopped.
 */
export async function unstageVolume(ctx: NodeContext, state: NodeVolumeState): Promise<void> {
  const paths = volumePaths(ctx.stateRoot, state.volumeId);
  const clock = new StepClock();
  if (state.accessType === "mount") await clock.time("unmount", () => unmountStaging(state));
  if (state.attachment) {
    await clock.time("detach", () => ctx.attacher.detach(state.attachment!));
    if (await ctx.attacher.isConnected(state.attachment)) {
      throw internal(
        `device ${state.attachment.device} of volume "${state.volumeId}" is still connected ` +
          `after detach; ZeroFS was left running so no data is lost — retry NodeUnstageVolume`,
      );
    }
    await clock.time(
      "state",
      () => ctx.states.write({ ...state, phase: "staging", attachment: undefined }),
    );
  }
  // ZeroFS flushes on SIGTERM: this step is the time until it exited.
  await clock.time("zerofs_stop", () => ctx.runner.stop(state.volumeId, paths.dir));
  await clock.time("state", () => ctx.states.remove(state.volumeId));
  ctx.log.log("info", "volume unstaged", {
    volume_id: state.volumeId,
    steps_ms: clock.summary(),
  });
}

async function unmountStaging(state: NodeVolumeState): Promise<void> {
  await unmount(state.stagingPath);
  const still = await findMountByTarget(state.stagingPath);
  if (still) {
    throw internal(
      `staging path ${state.stagingPath} of volume "${state.volumeId}" is still mounted ` +
        `(${still.source}); the device was left connected — retry NodeUnstageVolume`,
    );
  }
}

async function rejectWhilePublished(state: NodeVolumeState): Promise<void> {
  for (const target of state.publishedTargets) {
    if (await findMountByTarget(target.path)) {
      throw failedPrecondition(
        `volume "${state.volumeId}" is still published at ${target.path}; ` +
          `unpublish it before unstaging`,
      );
    }
  }
}
