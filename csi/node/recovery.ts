/**
 * Start-up recovery: finish what a crashed agent left half done, re-adopt
 * what is staged, and report — never touch — anything not provably ours.
 *
 * Per phase (each volume under its cross-process file lock, so that an
 * `attach`/`detach` verb running meanwhile is never raced):
 * - `unstaging` → the unstage is finished (it was decided; only ever completed);
 * - `expanding` → the expansion is finished (the device file only grows);
 * - targets `publishing` → published when mounted, else taken back;
 *   targets `unpublishing` → the unpublish is finished;
 * - `staging` → left to kubelet's retried stage (which finishes it on the
 *   same device) or its unstage (which reverses it): recovery has neither
 *   the request's secrets to finish it nor a reason to throw away a device
 *   the retry reuses;
 * - `staged` → re-adopted as is.
 *
 * @module
 */

import { VolumeBusyError, VolumeFileLocks } from "../locks.ts";
import type { NodeContext } from "./context.ts";
import { finishExpansion } from "./expand.ts";
import { scanOrphans } from "./orphans.ts";
import { settleInterruptedTargets } from "./publish.ts";
import type { NodeVolumeState } from "./state.ts";
import { volumeCondition } from "./stats.ts";
import { unstageVolume } from "./unstage.ts";

/** One volume as the agent found it at start (after finishing what it could). */
export interface RecoveredVolume {
  volumeId: string;
  /** The phase after recovery; `unstaged` when an interrupted unstage was finished. */
  phase: string;
  device?: string;
  abnormal: boolean;
  message: string;
}

/**
 * Finish interrupted operations, then log how each volume looks now. A volume
 * whose lock another process holds is left to that process.
 */
export async function recoverNodeState(
  ctx: NodeContext,
  locks: Pick<VolumeFileLocks, "acquire"> = new VolumeFileLocks(ctx.stateRoot),
): Promise<RecoveredVolume[]> {
  const found: RecoveredVolume[] = [];
  for (const recorded of await ctx.states.list()) {
    const fields = { volume_id: recorded.volumeId, phase: recorded.phase };
    let release;
    try {
      release = await locks.acquire(recorded.volumeId, "start-up recovery");
    } catch (e) {
      if (!(e instanceof VolumeBusyError)) throw e;
      ctx.log.log("warn", "volume busy at start; recovery left it to the holder", {
        ...fields,
        error: e.message,
      });
      continue;
    }
    try {
      const state = await settle(ctx, recorded);
      found.push(state ? await describe(ctx, state) : unstaged(ctx, recorded));
    } catch (e) {
      ctx.log.log("warn", "recovery could not finish the volume's interrupted operation", {
        ...fields,
        error: (e as Error).message,
      });
      found.push(await describe(ctx, await ctx.states.read(recorded.volumeId) ?? recorded));
    } finally {
      await release();
    }
  }
  await reportOrphans(ctx, await ctx.states.list());
  return found;
}

/** Finish (or for an unfinished publish, take back) what the phase says was under way. */
async function settle(ctx: NodeContext, state: NodeVolumeState): Promise<NodeVolumeState | null> {
  if (state.phase === "unstaging") {
    ctx.log.log("info", "finishing an interrupted unstage", { volume_id: state.volumeId });
    await unstageVolume(ctx, state);
    return null;
  }
  let current = state;
  if (current.phase === "expanding") {
    ctx.log.log("info", "finishing an interrupted expansion", {
      volume_id: state.volumeId,
      required_bytes: state.expansion?.requiredBytes,
    });
    current = await finishExpansion(ctx, current);
  }
  return await settleInterruptedTargets(ctx, current);
}

function unstaged(ctx: NodeContext, state: NodeVolumeState): RecoveredVolume {
  ctx.log.log("info", "finished an interrupted unstage", { volume_id: state.volumeId });
  return {
    volumeId: state.volumeId,
    phase: "unstaged",
    abnormal: false,
    message: "unstaged",
  };
}

async function describe(ctx: NodeContext, state: NodeVolumeState): Promise<RecoveredVolume> {
  const condition = await volumeCondition(ctx, state);
  const entry = {
    volumeId: state.volumeId,
    phase: state.phase,
    device: state.attachment?.device,
    ...condition,
  };
  const fields = { volume_id: state.volumeId, phase: state.phase, device: entry.device };
  if (state.phase === "staged" && !condition.abnormal) {
    ctx.log.log("info", "re-adopted staged volume", fields);
  } else {
    ctx.log.log("warn", "volume needs attention: kubelet's next stage or unstage will finish it", {
      ...fields,
      condition: condition.message,
    });
  }
  return entry;
}

/** One warning per device, mount or ZeroFS process no record owns; none is touched. */
async function reportOrphans(
  ctx: NodeContext,
  states: NodeVolumeState[],
): Promise<void> {
  try {
    for (const orphan of await scanOrphans(ctx.stateRoot, states)) {
      ctx.log.log("warn", "orphan: no volume record owns it; left as is", { ...orphan });
    }
  } catch (e) {
    ctx.log.log("warn", "orphan scan failed; run `zerofs-csi doctor` to retry it", {
      error: (e as Error).message,
    });
  }
}
