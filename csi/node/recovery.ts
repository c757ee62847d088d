/**
 * Start-up recovery: re-adopt what state.json says is staged, compare it with
 * the kernel and mountinfo, and report — never touch — anything not provably ours.
 *
 * @module
 */

import type { NodeContext } from "./context.ts";
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
  for (const state of await ctx.states.list()) {
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
  return found;
}
