/**
 * A process keeper: a small long-lived server, in a container of its own,
 * that starts the agent's long-lived helpers (nbdfuse) on request, so they
 * belong to its container rather than the agent's.
 *
 * Why: a container runtime kills every process of a container when that
 * container stops. Userspace attach depends on nbdfuse for as long as the
 * volume is staged, so an nbdfuse started by the agent would die with the
 * agent's container, and a pod writing to the volume would get I/O errors.
 * Started by the keeper, it survives agent restarts (the two containers share
 * the pod's PID namespace, so the agent still sees and checks the pid).
 *
 * One request per connection, one JSON line each way:
 * `{"tool","args","logPath"}` → `{"pid"}` or `{"error"}`.
 *
 * @module
 */

import { isAbsolute, normalize } from "node:path";
import { spawnDetached, ToolError } from "./run.ts";
import { writeAll } from "./write_all.ts";

/** The longest request or reply line either side accepts. */
const MAX_LINE_BYTES = 64 * 1024;
/** How long the agent waits for the keeper to start a helper. */
const DEFAULT_SPAWN_TIMEOUT_MS = 15_000;

/** Options of {@linkcode serveProcessKeeper}. */
export interface ProcessKeeperOptions {
  socketPath: string;
  /** The only tools it starts (as `spawnDetached` names them). */
  tools: readonly string[];
  /** Every log file must lie below this directory (the agent's state root). */
  logRoot: string;
  spawn?: typeof spawnDetached;
  /** Told about each start and each refusal (for the keeper's log). */
  onEvent?: (event: ProcessKeeperEvent) => void;
}

/** What the keeper did with one request. */
export type ProcessKeeperEvent =
  | { kind: "started"; tool: string; pid: number }
  | { kind: "refused"; reason: string };

/** A running keeper. */
export interface ProcessKeeper {
  /** Stop accepting requests; the helpers it started keep running. */
  close(): Promise<void>;
}

interface SpawnRequest {
  tool: string;
  args: string[];
  logPath: string;
}

/** Listen on `socketPath` (0600; a stale socket file is replaced) and serve until closed. */
export async function serveProcessKeeper(opts: ProcessKeeperOptions): Promise<ProcessKeeper> {
  await Deno.remove(opts.socketPath).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
  const listener = Deno.listen({ transport: "unix", path: opts.socketPath });
  await Deno.chmod(opts.socketPath, 0o600);
  const pending = new Set<Promise<void>>();
  const accepting = (async () => {
    for await (const conn of listener) {
      const served = answer(conn, opts).finally(() => pending.delete(served));
      pending.add(served);
    }
  })().catch((e) => {
    if (!(e instanceof Deno.errors.BadResource)) throw e;
  });
  return {
    async close() {
      listener.close();
      await accepting;
      await Promise.all(pending);
    },
  };
}

async function answer(conn: Deno.Conn, opts: ProcessKeeperOptions): Promise<void> {
  try {
    let reply: { pid: number } | { error: string };
    try {
      const request = checkRequest(JSON.parse(await readLine(conn)), opts);
      const pid = await (opts.spawn ?? spawnDetached)(request.tool, request.args, {
        logPath: request.logPath,
      });
      opts.onEvent?.({ kind: "started", tool: request.tool, pid });
      reply = { pid };
    } catch (e) {
      const reason = e instanceof Error ? e.message : String(e);
      opts.onEvent?.({ kind: "refused", reason });
      reply = { error: reason };
    }
    await writeAll(conn, new TextEncoder().encode(JSON.stringify(reply) + "\n"));
  } finally {
    conn.close();
  }
}

function checkRequest(raw: unknown, opts: ProcessKeeperOptions): SpawnRequest {
  const r = (raw ?? {}) as Partial<SpawnRequest>;
  if (typeof r.tool !== "string" || !opts.tools.includes(r.tool)) {
    throw new Error(`tool ${JSON.stringify(r.tool)} is not one of ${opts.tools.join(", ")}`);
  }
  if (!Array.isArray(r.args) || !r.args.every((a) => typeof a === "string" && !a.includes("\0"))) {
    throw new Error("args must be an array of strings");
  }
  const root = normalize(opts.logRoot).replace(/\/+$/, "");
  if (
    typeof r.logPath !== "string" || !isAbsolute(r.logPath) ||
    normalize(r.logPath) !== r.logPath || !r.logPath.startsWith(`${root}/`)
  ) {
    throw new Error(`logPath ${JSON.stringify(r.logPath)} must be a normalized path below ${root}`);
  }
  return { tool: r.tool, args: r.args, logPath: r.logPath };
}

/**
 * A `spawnDetached` that asks the keeper at `socketPath` to start the helper.
 * The helper gets the keeper's environment, so a caller may not pass one.
 */
export function spawnThroughKeeper(
  socketPath: string,
  opts: { timeoutMs?: number } = {},
): typeof spawnDetached {
  return async (tool, args, detached) => {
    const fail = (why: string) =>
      new ToolError(tool, args, null, `process keeper ${socketPath}: ${why}`);
    if (detached.env) throw fail("helpers started by the keeper cannot be given an environment");
    const timeoutMs = opts.timeoutMs ?? DEFAULT_SPAWN_TIMEOUT_MS;
    let conn: Deno.UnixConn;
    try {
      conn = await Deno.connect({ transport: "unix", path: socketPath });
    } catch (e) {
      throw fail(`cannot connect (${e instanceof Error ? e.message : String(e)})`);
    }
    const timer = setTimeout(() => conn.close(), timeoutMs);
    try {
      const request = { tool, args: [...args], logPath: detached.logPath };
      await writeAll(conn, new TextEncoder().encode(JSON.stringify(request) + "\n"));
      const reply = JSON.parse(await readLine(conn)) as { pid?: unknown; error?: unknown };
      if (typeof reply.error === "string") throw fail(reply.error);
      if (!Number.isSafeInteger(reply.pid)) throw fail(`no pid in the reply`);
      return reply.pid as number;
    } catch (e) {
      if (e instanceof ToolError) throw e;
      throw fail(
        `no answer within ${timeoutMs} ms (${e instanceof Error ? e.message : String(e)})`,
      );
    } finally {
      clearTimeout(timer);
      try {
        conn.close();
      } catch { /* closed by the timer */ }
    }
  };
}

async function readLine(conn: Deno.Conn): Promise<string> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const buf = new Uint8Array(4096);
  while (true) {
    const n = await conn.read(buf);
    if (n === null) break;
    const chunk = buf.slice(0, n);
    const newline = chunk.indexOf(10);
    chunks.push(newline === -1 ? chunk : chunk.slice(0, newline));
    size += n;
    if (newline !== -1) break;
    if (size > MAX_LINE_BYTES) throw new Error(`line longer than ${MAX_LINE_BYTES} bytes`);
  }
  const line = new Uint8Array(chunks.reduce((sum, c) => sum + c.length, 0));
  let offset = 0;
  for (const c of chunks) {
    line.set(c, offset);
    offset += c.length;
  }
  return new TextDecoder().decode(line);
}
