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

const FREEZE_TIMEOUT_MS = 5_000;
const POLL_MS = 2;

/** SIGSTOP `pid` and resolve once all of its threads are stopped. */
export async function freezeProcess(pid: number): Promise<void> {
  Deno.kill(pid, "SIGSTOP");
  const deadline = Date.now() + FREEZE_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (await allThreadsStopped(pid)) return;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  throw new Error(`process ${pid} did not stop within ${FREEZE_TIMEOUT_MS} ms of SIGSTOP`);
}

async function allThreadsStopped(pid: number): Promise<boolean> {
  for await (const task of Deno.readDir(`/proc/${pid}/task`)) {
    const stat = await Deno.readTextFile(`/proc/${pid}/task/${task.name}/stat`).catch(() => "");
    // The state follows the command name, which is in parentheses and may hold spaces.
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    if (state !== "" && state !== "T") return false;
  }
  return true;
}
