/**
 * Start-up recovery: re-adopt what state.json says is staged, compare it with
 * the kernel and mountinfo, and report — never touch — anything not provably ours.
 *
 * @module
 */

import type { NodeContext } from "./context.ts";
import { scanOrphans } from "./orphans.ts";
import type { NodeVolumeState } from "./state.ts";
import { volumeCondition } from "./stats.ts";

/** One volume as the agent found it at start. */
export interface RecoveredVolume {
  volumeId: string;
  phase: string;
  device?: string;
  abnormal: boolean;
  message: string;
}

/** Read every state record and log how each volume looks now. */
export async function recoverNodeState(ctx: NodeContext): Promise<RecoveredVolume[]> {
  const found: RecoveredVolume[] = [];
  const states = await ctx.states.list();
  for (const state of states) {
    const condition = await volumeCondition(ctx, state);
    const entry = {
      volumeId: state.volumeId,
      phase: state.phase,
      device: state.attachment?.device,
      ...condition,
    };
    found.push(entry);
    const fields = { volume_id: state.volumeId, phase: state.phase, device: entry.device };
    if (state.phase === "staged" && !condition.abnormal) {
      ctx.log.log("info", "re-adopted staged volume", fields);
    } else {
      ctx.log.log(
        "warn",
        "volume needs attention: kubelet's next stage or unstage will finish it",
        {
          ...fields,
          condition: condition.message,
        },
      );
    }
  }
  await reportOrphans(ctx, states);
  return found;
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
