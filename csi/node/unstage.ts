/**
 * NodeUnstageVolume, strictly in order and each step verified before the
 * next: record phase `unstaging` → unmount → detach (device free) → stop
 * ZeroFS (it flushes on SIGTERM) → forget state. A failing step returns its
 * error; nothing is skipped, because disconnecting under a live mount loses
 * data.
 *
 * @module
 */

import { findMountByTarget, unmount } from "../../blockdev/mod.ts";
import { volumePaths } from "../../zerofs/mod.ts";
import { failedPrecondition, internal } from "../errors.ts";
import { failpoint } from "../failpoints.ts";
import { parseVolumeId } from "../validate.ts";
import type { NodeContext } from "./context.ts";
import { parseKubeletPath } from "./host_paths.ts";
import type { NodeUnstageVolumeRequest__Output } from "../messages/mod.ts";
import type { NodeVolumeState } from "./state.ts";
import { StepClock } from "./step_clock.ts";

/** NodeUnstageVolume. */
export async function nodeUnstageVolume(
  ctx: NodeContext,
  req: NodeUnstageVolumeRequest__Output,
): Promise<object> {
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
 * The ordered teardown, shared with the `detach` CLI verb and the agent's
 * recovery. Phase `unstaging` is recorded before the first effect and each
 * step persists its result, so a retry (or recovery) after a failure or a
 * crash resumes where it stopped.
 */
export async function unstageVolume(ctx: NodeContext, state: NodeVolumeState): Promise<void> {
  const paths = volumePaths(ctx.stateRoot, state.volumeId);
  const clock = new StepClock();
  let current: NodeVolumeState = { ...state, phase: "unstaging", expansion: undefined };
  await clock.time("state", () => ctx.states.write(current));
  failpoint("unstage.after-intent");
  if (state.accessType === "mount") {
    await clock.time("unmount", () => unmountStaging(state));
    failpoint("unstage.after-unmount");
  }
  if (current.attachment) {
    const attachment = current.attachment;
    await clock.time("detach", () => ctx.attacher.detach(attachment));
    if (await ctx.attacher.isConnected(attachment)) {
      throw internal(
        `device ${attachment.device} of volume "${state.volumeId}" is still connected ` +
          `after detach; ZeroFS was left running so no data is lost — retry NodeUnstageVolume`,
      );
    }
    current = { ...current, attachment: undefined };
    await clock.time("state", () => ctx.states.write(current));
    failpoint("unstage.after-detach");
  }
  // ZeroFS flushes on SIGTERM: this step is the time until it exited.
  await clock.time("zerofs_stop", () => ctx.runner.stop(state.volumeId, paths.dir));
  failpoint("unstage.after-stop");
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
