/**
 * `zerofs-csi status`: every volume on this node — state, ZeroFS and its
 * readiness, device and size, mount point, targets, condition.
 *
 * @module
 */

import { deviceSizeBytes } from "../../blockdev/mod.ts";
import { type NodeContext, type NodeVolumeState, volumeHealth } from "../node/mod.ts";
import { parseFlags } from "./flags.ts";
import { NODE_FLAGS, nodeContextFor } from "./node_verb.ts";
import { printUsage } from "./usage.ts";

/** One row of `status`. */
export interface VolumeStatusRow {
  volumeId: string;
  phase: string;
  access: string;
  zerofs: { running: boolean; ready: boolean; pid?: number; pod?: string; reason?: string };
  device?: string;
  deviceSizeBytes?: number;
  deviceConnected: boolean;
  stagingPath: string;
  mounted?: boolean;
  publishedTargets: string[];
  condition: { abnormal: boolean; message: string };
}

/** Observe one volume for `status`. */
async function statusRow(
  ctx: NodeContext,
  state: NodeVolumeState,
): Promise<VolumeStatusRow> {
  const health = await volumeHealth(ctx, state, { probeWrites: true });
  const device = state.attachment?.device || undefined;
  const size = device && health.deviceConnected
    ? await deviceSizeBytes(device).catch(() => undefined)
    : undefined;
  return {
    volumeId: state.volumeId,
    phase: state.phase,
    access: state.accessType === "block"
      ? "block"
      : `${state.fsType}${state.readOnly ? " ro" : ""}`,
    zerofs: {
      running: health.zerofs.running,
      ready: health.zerofs.ready,
      pid: health.zerofs.pid,
      pod: health.zerofs.podName,
      reason: health.zerofs.reason,
    },
    device,
    deviceSizeBytes: size,
    deviceConnected: health.deviceConnected,
    stagingPath: state.stagingPath,
    mounted: state.accessType === "mount" ? !!health.stagingMount : undefined,
    publishedTargets: state.publishedTargets.map((t) => t.path),
    condition: health.condition,
  };
}

/** Render rows as an aligned table. */
function formatStatusTable(rows: VolumeStatusRow[]): string {
  if (rows.length === 0) return "No volumes are staged on this node.";
  const head = [
    "VOLUME",
    "PHASE",
    "ACCESS",
    "ZEROFS",
    "DEVICE",
    "SIZE",
    "MOUNT",
    "PODS",
    "CONDITION",
  ];
  const cells = rows.map((r) => [
    r.volumeId,
    r.phase,
    r.access,
    `${r.zerofs.ready ? "ready" : r.zerofs.running ? "not ready" : "stopped"} ` +
    (r.zerofs.pod ?? (r.zerofs.pid ? `pid ${r.zerofs.pid}` : "-")),
    `${r.device ?? "-"}${r.device && !r.deviceConnected ? " (disconnected)" : ""}`,
    r.deviceSizeBytes === undefined ? "-" : humanBytes(r.deviceSizeBytes),
    r.mounted === undefined ? "(block)" : r.mounted ? r.stagingPath : "NOT MOUNTED",
    String(r.publishedTargets.length),
    r.condition.abnormal ? `ABNORMAL: ${r.condition.message}` : "ok",
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) => c.map((v, i) => v.padEnd(widths[i])).join("  ").trimEnd();
  return [line(head), ...cells.map(line)].join("\n");
}

function humanBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${Number.isInteger(value) ? value : value.toFixed(1)} ${units[unit]}`;
}

/** Run `status`; exit 1 when any volume is abnormal. */
export async function runStatus(argv: string[]): Promise<number> {
  const flags = parseFlags("status", argv, { json: { type: "boolean" }, ...NODE_FLAGS });
  if (flags.help) return printUsage("status");
  const { ctx } = await nodeContextFor("status", { ...flags, "log-level": "warn" });
  const rows = [];
  for (const state of await ctx.states.list()) rows.push(await statusRow(ctx, state));
  console.log(flags.json ? JSON.stringify(rows, null, 2) : formatStatusTable(rows));
  return rows.some((r) => r.condition.abnormal) ? 1 : 0;
}
