/**
 * The only place in the driver that starts a host process.
 *
 * Each host tool is wrapped once, by what it does (`probeSignature` for blkid,
 * `connectKernelNbd` and `disconnectKernelNbd` for nbd-client, …), and those
 * wrappers call {@linkcode runTool} or {@linkcode spawnDetached} with an argv
 * array — never a shell string.
 *
 * @module
 */

import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";

/** How much of stderr an error message carries. */
const STDERR_TAIL_CHARS = 600;
/** Default bound for a tool that should answer quickly. */
export const DEFAULT_TOOL_TIMEOUT_MS = 30_000;

/** Options for one tool invocation. */
export interface RunOptions {
  /** Kill the tool (SIGKILL) after this many milliseconds. */
  timeoutMs?: number;
  /** Extra environment for the child; merged over the agent's own. */
  env?: Record<string, string>;
  /** Exit codes that are answers, not failures (e.g. blkid's 2 = "nothing found"). */
  okExitCodes?: readonly number[];
  /** Bytes written to the child's stdin. */
  stdin?: Uint8Array;
}

/** What a finished tool produced. */
export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** The signature every tool wrapper receives, so tests can inject a recording runner. */
export type Runner = (
  tool: string,
  args: readonly string[],
  opts?: RunOptions,
) => Promise<RunResult>;

/** A host tool failed: carries argv[0], the exit code and the tail of stderr. */
export class ToolError extends Error {
  override readonly name = "ToolError";
  constructor(
    readonly tool: string,
    readonly args: readonly string[],
    readonly exitCode: number | null,
    readonly stderrTail: string,
    readonly timedOut = false,
  ) {
    const what = timedOut
      ? `timed out`
      : exitCode === null
      ? "could not be started"
      : `exited with code ${exitCode}`;
    const tail = stderrTail.trim();
    super(`${tool} ${what}${tail ? `: ${tail}` : ""}`);
  }
}

function tail(text: string): string {
  return text.length > STDERR_TAIL_CHARS ? "…" + text.slice(-STDERR_TAIL_CHARS) : text;
}

/**
 * Run a host tool to completion.
 *
 * @example
 * ```ts
 * const { stdout } = await runTool("blkid", ["-p", "-o", "export", "/dev/loop0"], {
 *   okExitCodes: [2],
 * });
 * ```
 */
export const runTool: Runner = async (tool, args, opts = {}) => {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS;
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(tool, {
      args: [...args],
      env: opts.env,
      stdin: opts.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    throw new ToolError(tool, args, null, e instanceof Error ? e.message : String(e));
  }
  if (opts.stdin) {
    const writer = child.stdin.getWriter();
    await writer.write(opts.stdin);
    await writer.close();
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }, timeoutMs);
  try {
    const out = await child.output();
    const result: RunResult = {
      exitCode: out.code,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: new TextDecoder().decode(out.stderr),
    };
    if (timedOut) throw new ToolError(tool, args, out.code, tail(result.stderr), true);
    if (out.code !== 0 && !(opts.okExitCodes ?? []).includes(out.code)) {
      throw new ToolError(tool, args, out.code, tail(result.stderr || result.stdout));
    }
    return result;
  } finally {
    clearTimeout(timer);
  }
};

/**
 * Sets umask 077 (the unix sockets, logs and caches a helper creates are its
 * owner's alone: ZeroFS's 9P and NBD protocols have no authentication), closes
 * every descriptor but stdio, then execs the tool. Deno creates some
 * descriptors without close-on-exec (the gRPC listening socket among them);
 * a long-lived child that inherited the CSI socket would keep it "alive" after
 * an agent crash, and one that inherited the node lock file would hold the
 * lock. A fixed script: the tool and its arguments arrive as "$@", never
 * interpolated. (bash, not dash: dash cannot name descriptors above 9.)
 */
const LAUNCHER = "umask 077; " +
  'for fd in $(ls /proc/$$/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done; exec "$@"';

/** Options for a long-lived helper process (ZeroFS, nbdfuse). */
export interface DetachedOptions {
  /** File that receives the child's stdout and stderr (appended). */
  logPath: string;
  /**
   * The child's whole environment (nothing of the agent's is added); default:
   * the agent's environment. ZeroFS gets a minimal one with its secrets.
   */
  env?: Record<string, string>;
}

/**
 * Start a long-lived process in its own session with stdout and stderr
 * appended to a log file, so it outlives the agent (a node-agent restart must
 * not take ZeroFS or nbdfuse down with it, and no pipe to the agent exists to
 * break). Returns the pid; the caller records it before doing anything else.
 */
export async function spawnDetached(
  tool: string,
  args: readonly string[],
  opts: DetachedOptions,
): Promise<number> {
  // Deno.Command cannot hand a file descriptor to a child; node:child_process can.
  const fd = openSync(opts.logPath, "a", 0o600);
  try {
    const child = spawn("/bin/bash", [
      "-c",
      LAUNCHER,
      "zerofs-csi-launch",
      tool,
      ...args,
    ], {
      detached: true,
      stdio: ["ignore", fd, fd],
      env: opts.env ? { ...opts.env } : undefined,
    });
    await new Promise<void>((resolve, reject) => {
      child.once("spawn", resolve);
      child.once("error", reject);
    }).catch((e) => {
      throw new ToolError(tool, args, null, e instanceof Error ? e.message : String(e));
    });
    child.unref();
    if (child.pid === undefined) throw new ToolError(tool, args, null, "no pid");
    return child.pid;
  } finally {
    closeSync(fd);
  }
}
