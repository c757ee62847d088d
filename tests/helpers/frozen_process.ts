/**
 * Test helper: stop a process and know it is stopped.
 *
 * `kill(pid, SIGSTOP)` returns before the process stops: one thread is
 * woken to start the group stop, and on a loaded machine the others may
 * still answer a request meanwhile. A test that means "the server is
 * hung" waits until every thread reads state `T` in /proc.
 *
 * @module
 */

import { pollUntil, readProcessStat } from "../../blockdev/mod.ts";

const FREEZE_TIMEOUT_MS = 5_000;

/** SIGSTOP `pid` and resolve once all of its threads are stopped. */
export async function freezeProcess(pid: number): Promise<void> {
  Deno.kill(pid, "SIGSTOP");
  const stopped = async () => await allThreadsStopped(pid) || undefined;
  if (
    !await pollUntil(stopped, {
      timeoutMs: FREEZE_TIMEOUT_MS,
      initialIntervalMs: 2,
      maxIntervalMs: 10,
    })
  ) {
    throw new Error(`process ${pid} did not stop within ${FREEZE_TIMEOUT_MS} ms of SIGSTOP`);
  }
}

async function allThreadsStopped(pid: number): Promise<boolean> {
  const tasks = `/proc/${pid}/task`;
  for await (const task of Deno.readDir(tasks)) {
    // A thread that exited meanwhile does not count.
    const state = (await readProcessStat(Number(task.name), tasks))?.state;
    if (state !== undefined && state !== "T") return false;
  }
  return true;
}
