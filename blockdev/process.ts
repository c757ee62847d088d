/**
 * Liveness of helper processes the agent started detached (nbdfuse).
 *
 * @module
 */

import { pollUntil } from "./poll.ts";

/** What `/proc/<pid>/stat` says about a process. */
export interface ProcessStat {
  /** One letter: R, S, D, T, Z (zombie), X (dead), … */
  state: string;
  ppid: number;
  /** Field 22, the start time in clock ticks: tells a reused pid from the one seen before. */
  startTicks: number;
}

/** `/proc/<pid>/stat` of `pid`, or undefined when it is gone. */
export async function readProcessStat(
  pid: number,
  procRoot = "/proc",
): Promise<ProcessStat | undefined> {
  let stat: string;
  try {
    stat = await Deno.readTextFile(`${procRoot}/${pid}/stat`);
  } catch (e) {
    if (isGone(e)) return undefined;
    throw e;
  }
  // Field 3 follows the parenthesised command name, which may itself contain ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { state: fields[0], ppid: Number(fields[1]), startTicks: Number(fields[19]) };
}

/**
 * True when `pid` runs and is not a zombie. A detached helper whose parent
 * died is re-parented to PID 1, which in a container may never reap it, so a
 * zombie counts as exited.
 */
export async function isProcessAlive(pid: number, procRoot = "/proc"): Promise<boolean> {
  const stat = await readProcessStat(pid, procRoot);
  return stat !== undefined && isLive(stat);
}

/**
 * The start time of `pid` while it is alive (as {@linkcode isProcessAlive}
 * judges), else undefined. With the pid it names one process: a later one
 * that reuses the pid has another start time.
 */
export async function liveStartTicks(pid: number, procRoot = "/proc"): Promise<number | undefined> {
  const stat = await readProcessStat(pid, procRoot);
  return stat !== undefined && isLive(stat) ? stat.startTicks : undefined;
}

function isLive(stat: ProcessStat): boolean {
  return stat.state !== "Z" && stat.state !== "X";
}

/** The command line of `pid` (argv), or undefined when it is gone. */
export async function processArgv(pid: number, procRoot = "/proc"): Promise<string[] | undefined> {
  try {
    const raw = await Deno.readTextFile(`${procRoot}/${pid}/cmdline`);
    return raw.split("\0").filter((part, i, all) => part !== "" || i < all.length - 1);
  } catch (e) {
    if (isGone(e)) return undefined;
    throw e;
  }
}

/**
 * Reading /proc/<pid>/… of a process that is exiting fails with ENOENT or
 * ESRCH. Deno maps the first to NotFound but surfaces the second only as
 * "No such process (os error 3)", with no code to test.
 */
function isGone(e: unknown): boolean {
  return e instanceof Deno.errors.NotFound ||
    (e instanceof Error && e.message.includes("(os error 3)"));
}

/** Send `signal` to `pid`; a process that is already gone is not an error. */
export function signalProcess(pid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(pid, signal);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/**
 * Wait up to `graceMs` for a process to exit by itself, then SIGKILL it and
 * wait again. `isRunning` decides whether `pid` is still *our* process (a pid
 * can be reused, so the caller checks its command line too). Returns true when
 * it had to be killed. Throws if it survives SIGKILL.
 */
export async function ensureProcessExited(
  pid: number,
  opts: { graceMs: number; isRunning: () => Promise<boolean> },
): Promise<boolean> {
  const exited = () => opts.isRunning().then((running) => running ? undefined : true);
  if (await pollUntil(exited, { timeoutMs: opts.graceMs })) return false;
  signalProcess(pid, "SIGKILL");
  if (await pollUntil(exited, { timeoutMs: 5_000 })) return true;
  throw new Error(
    `Cannot stop process ${pid}: it is still alive 5 s after SIGKILL (stuck in the kernel?). ` +
      `Inspect /proc/${pid}/stack and retry.`,
  );
}
