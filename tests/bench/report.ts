/**
 * Benchmark results and their table.
 *
 * @module
 */

/** One measured operation. */
export interface BenchRow {
  name: string;
  samplesMs: number[];
  /** Optional target for the median, shown next to the result. */
  targetP50Ms?: number;
}

/** A section's results. */
export interface BenchReport {
  section: string;
  rows: BenchRow[];
  notes?: string[];
}

/** The p-th percentile (0..100) by nearest rank. */
export function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1];
}

/** Time `fn` `count` times, sequentially; returns milliseconds per call. */
export async function sample(
  count: number,
  fn: (i: number) => Promise<unknown>,
): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await fn(i);
    out.push(performance.now() - t0);
  }
  return out;
}

/** A readable fixed-width table. */
export function formatReport(r: BenchReport): string {
  const head = ["operation", "n", "p50 ms", "p95 ms", "max ms", "target p50"];
  const rows = r.rows.map((row) => [
    row.name,
    String(row.samplesMs.length),
    percentile(row.samplesMs, 50).toFixed(3),
    percentile(row.samplesMs, 95).toFixed(3),
    Math.max(...row.samplesMs).toFixed(3),
    row.targetP50Ms === undefined
      ? "-"
      : `${row.targetP50Ms} ms ${
        percentile(row.samplesMs, 50) <= row.targetP50Ms ? "met" : "MISSED"
      }`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ");
  return [
    `== ${r.section} ==`,
    line(head),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map(line),
    ...(r.notes ?? []).map((n) => `note: ${n}`),
    "",
  ].join("\n");
}
