/**
 * NodeGetInfo and NodeGetCapabilities.
 *
 * @module
 */

import type { NodeContext } from "./context.ts";

/** NodeGetInfo: the scheduler enforces the device limit through max_volumes_per_node. */
export async function nodeGetInfo(ctx: NodeContext): Promise<object> {
  const devices = await ctx.attacher.capacity();
  const max = ctx.maxVolumes ? Math.min(devices, ctx.maxVolumes) : devices;
  return { node_id: ctx.nodeId, max_volumes_per_node: max };
}

/** NodeGetCapabilities. */
export function nodeGetCapabilities(): object {
  const rpc = (type: string) => ({ rpc: { type } });
  return {
    capabilities: [
      rpc("STAGE_UNSTAGE_VOLUME"),
      rpc("GET_VOLUME_STATS"),
      rpc("VOLUME_CONDITION"),
      rpc("EXPAND_VOLUME"),
      // The controller advertises it too; the spec requires both or neither.
      rpc("SINGLE_NODE_MULTI_WRITER"),
    ],
  };
}
