/**
 * What formatting and first mounting a 100 GiB volume costs on the export,
 * per filesystem: bytes written, trimmed and zeroed as nbdkit's stats filter
 * counted them (the stand-in serves NBD through it when
 * ZEROFS_STANDIN_NBD_STATS names a file).
 *
 * @module
 */

import { join } from "node:path";
import { STANDIN_BIN, STANDIN_NBD_STATS_ENV } from "../fixtures/zerofs_standin/mod.ts";
import { makeTestDir } from "../helpers/driver.ts";
import { startNodeEnvironment, tearDownNodeEnvironment } from "../helpers/node_env.ts";
import {
  type AccessKind,
  createVolume,
  kubeletPaths,
  stageRequest,
} from "../helpers/volume_steps.ts";

const SIZE_BYTES = 100 * 1024 ** 3;
const MIB = 1024 * 1024;

/** Byte counters of one or more nbdkit stats blocks, summed. */
export interface ExportTraffic {
  writeBytes: number;
  trimBytes: number;
  zeroBytes: number;
}

const UNIT_BYTES: Record<string, number> = {
  bytes: 1,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
  TiB: 1024 ** 4,
};

/** Parse nbdkit stats-filter output (`write: N ops, T s, 5.08 MiB, …`). */
export function parseNbdStats(text: string): ExportTraffic {
  const sum = (op: string) =>
    [...text.matchAll(
      new RegExp(`^${op}: \\d+ ops, [\\d.]+ s, ([\\d.]+) (bytes|KiB|MiB|GiB|TiB)`, "gm"),
    )]
      .reduce((total, m) => total + Number(m[1]) * UNIT_BYTES[m[2]], 0);
  return { writeBytes: sum("write"), trimBytes: sum("trim"), zeroBytes: sum("zero") };
}

async function measure(kind: AccessKind): Promise<ExportTraffic> {
  const dir = await makeTestDir();
  const statsFile = join(dir, "nbd-stats.txt");
  // The stand-in on purpose: its nbdkit counts the bytes on the export; the real ZeroFS has no such counter.
  const env = await startNodeEnvironment({
    dir,
    zerofsBin: STANDIN_BIN,
    env: { [STANDIN_NBD_STATS_ENV]: statsFile },
  });
  try {
    const volume = await createVolume(env.controller.client, {
      name: `pvc-format-${kind}`,
      kind,
      sizeBytes: SIZE_BYTES,
    });
    const paths = kubeletPaths(env.kubeletDir, volume.volume_id);
    await env.node.client.node.NodeStageVolume(
      stageRequest(volume, { kind, staging: paths.staging }),
    );
    await env.node.client.node.NodeUnstageVolume({
      volume_id: volume.volume_id,
      staging_target_path: paths.staging,
    });
    return parseNbdStats(await Deno.readTextFile(statsFile));
  } finally {
    await tearDownNodeEnvironment(env);
  }
}

/** Print the per-filesystem traffic table (not a latency table). */
export async function run(): Promise<string> {
  const lines = [
    "== Format + first mount of a 100 GiB volume (bytes on the NBD export) ==",
    "fs      written MiB  trimmed MiB  zeroed MiB  target",
  ];
  for (const kind of ["ext4", "xfs", "btrfs"] as const) {
    const t = await measure(kind);
    // A whole-device pass would trim or zero on the order of the device size.
    const ok = t.writeBytes <= 6 * MIB && t.trimBytes + t.zeroBytes < SIZE_BYTES / 100;
    lines.push(
      `${kind.padEnd(7)} ${(t.writeBytes / MIB).toFixed(2).padStart(11)}  ` +
        `${(t.trimBytes / MIB).toFixed(2).padStart(11)}  ${
          (t.zeroBytes / MIB).toFixed(2).padStart(10)
        }` +
        `  ≤ 6 MiB written, no trim/zero pass: ${ok ? "met" : "MISSED"}`,
    );
  }
  return lines.join("\n") + "\n";
}
