/**
 * How the guest program reports to the host: one line per scenario,
 * `ZVM-RESULT <json>`, on its stdout (which the VM harness returns as the
 * script output, mixed with whatever else the guest printed).
 *
 * @module
 */

/** Marks a result line in the guest's output. */
export const RESULT_PREFIX = "ZVM-RESULT ";

/** One scenario's outcome as the guest saw it. */
export interface ScenarioResult {
  scenario: string;
  ok: boolean;
  /** Wall time of the scenario inside the guest. */
  ms: number;
  /** What the scenario measured or observed (counts, devices, timings). */
  facts: Record<string, unknown>;
  /** The failure (message and stack) when `ok` is false. */
  error?: string;
}

/** The line the guest prints for `result`. */
export function formatResult(result: ScenarioResult): string {
  return RESULT_PREFIX + JSON.stringify(result);
}

/** Every result line in `output`, in order; other lines are ignored. */
export function parseResults(output: string): ScenarioResult[] {
  const results: ScenarioResult[] = [];
  for (const line of output.split("\n")) {
    const at = line.indexOf(RESULT_PREFIX);
    if (at < 0) continue;
    results.push(JSON.parse(line.slice(at + RESULT_PREFIX.length)) as ScenarioResult);
  }
  return results;
}
