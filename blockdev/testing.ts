/**
 * A recording {@linkcode Runner} for unit tests: remembers every call and
 * answers from a script instead of running anything.
 *
 * @module
 */

import type { Runner, RunOptions, RunResult } from "./run.ts";
import { ToolError } from "./run.ts";

/** One recorded tool call. */
export interface RecordedCall {
  tool: string;
  args: string[];
  opts?: RunOptions;
}

/** Scripted answer: a result (exit code 0 by default) or a function of the call. */
export type ScriptedAnswer = Partial<RunResult> | ((call: RecordedCall) => Partial<RunResult>);

/**
 * A runner that records calls and answers them in order from `answers`
 * (missing answers = exit 0, empty output). Non-zero exit codes not listed in
 * `okExitCodes` throw {@linkcode ToolError} just like the real runner.
 */
export function recordingRunner(
  answers: ScriptedAnswer[] = [],
): { runner: Runner; calls: RecordedCall[] } {
  const calls: RecordedCall[] = [];
  const runner: Runner = (tool, args, opts) => {
    const call = { tool, args: [...args], opts };
    calls.push(call);
    const scripted = answers.shift() ?? {};
    const partial = typeof scripted === "function" ? scripted(call) : scripted;
    const result: RunResult = { exitCode: 0, stdout: "", stderr: "", ...partial };
    if (result.exitCode !== 0 && !(opts?.okExitCodes ?? []).includes(result.exitCode)) {
      return Promise.reject(new ToolError(tool, args, result.exitCode, result.stderr));
    }
    return Promise.resolve(result);
  };
  return { runner, calls };
}
