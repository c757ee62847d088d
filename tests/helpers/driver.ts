/**
 * Start the real driver (`main.ts`) under exactly the runtime flags its
 * release binary is compiled with (deno.json's `compile:<mode>` task:
 * permission set and V8 flags), capture its output, wait until it answers
 * Probe.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { pathExists } from "../../blockdev/mod.ts";
import { createCsiClient, type CsiClient } from "./csi_client.ts";

/** Repository root. */
export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** Options of {@linkcode startDriver}. */
export interface StartDriverOptions {
  mode: "controller" | "node";
  /** Flags after the verb (must include --endpoint). */
  args: string[];
  env?: Record<string, string>;
  /** How long to wait for Probe to answer. */
  readyTimeoutMs?: number;
  /**
   * argv that execs the driver's command line (appended to it), e.g. to run it
   * in a private mount namespace; must `exec` so signals reach the driver.
   */
  launcher?: string[];
  /** Where this process reaches the socket, when the launcher maps it elsewhere. */
  clientSocketPath?: string;
}

/** A running driver process. */
export interface RunningDriver {
  socketPath: string;
  client: CsiClient;
  /** Every stderr/stdout line so far. */
  output(): string;
  /** Lines as they arrive (stderr and stdout interleaved). */
  lines(): AsyncIterable<string>;
  /** Resolve with the first output line matching `pattern` (lines are read as they arrive). */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** SIGTERM, await exit, assert the socket is gone; returns the exit code. */
  stop(): Promise<number>;
  /** The process, for tests that need its pid or status. */
  process: Deno.ChildProcess;
}

/** Make a fresh test directory under /run/zerofs-csi (allowed by the permission sets). */
export async function makeTestDir(): Promise<string> {
  const dir = `/run/zerofs-csi/test-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  return dir;
}

function socketFromArgs(args: string[]): string {
  const i = args.indexOf("--endpoint");
  assert(i >= 0 && args[i + 1], "startDriver needs --endpoint in args");
  return args[i + 1].replace(/^unix:\/\//, "");
}

/**
 * The runtime flags (`-P=<set>`, `--v8-flags=…`) deno.json's `compile:<mode>`
 * task builds the release binary with: `deno run` with these runs the driver
 * exactly as the binary does (compiled binaries never prompt, nor does a
 * `deno run` without a terminal).
 */
export function releaseFlags(mode: "controller" | "node"): string[] {
  const config = JSON.parse(Deno.readTextFileSync(join(REPO_ROOT, "deno.json")));
  const task = String(config.tasks?.[`compile:${mode}`] ?? "");
  const words = task.split(/\s+/).filter(Boolean);
  const output = words.indexOf("--output");
  assert(
    words[0] === "deno" && words[1] === "compile" && output > 1 &&
      words.slice(output + 2).join(" ") === "main.ts",
    `deno.json task compile:${mode} is not "deno compile <flags> --output <file> main.ts": ${task}`,
  );
  const flags = words.slice(2, output);
  assert(flags.includes(`-P=${mode}`), `compile:${mode} does not use the ${mode} permission set`);
  return flags;
}

/** Spawn `deno run <release flags> main.ts <mode> …` and wait until Probe answers. */
export async function startDriver(opts: StartDriverOptions): Promise<RunningDriver> {
  const socketPath = opts.clientSocketPath ?? socketFromArgs(opts.args);
  const argv = [
    Deno.execPath(),
    "run",
    ...releaseFlags(opts.mode),
    "--config",
    join(REPO_ROOT, "deno.json"),
    join(REPO_ROOT, "main.ts"),
    opts.mode,
    ...opts.args,
  ];
  const [program, ...args] = [...(opts.launcher ?? []), ...argv];
  const process = new Deno.Command(program, {
    args,
    env: { NO_COLOR: "1", ...opts.env },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const captured: string[] = [];
  const waiters = new Set<() => void>();
  let closed = false;
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
    let partial = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      partial += value;
      const parts = partial.split("\n");
      partial = parts.pop() ?? "";
      captured.push(...parts);
      for (const w of waiters) w();
    }
    if (partial) captured.push(partial);
  };
  const pumps = Promise.all([pump(process.stdout), pump(process.stderr)]).then(() => {
    closed = true;
    for (const w of waiters) w();
  });
  const client = createCsiClient(socketPath);
  try {
    await waitForProbe(client, process, { timeoutMs: opts.readyTimeoutMs ?? 180_000, captured });
  } catch (e) {
    client.close();
    try {
      process.kill("SIGKILL");
    } catch { /* already exited */ }
    await process.status;
    await pumps;
    throw new Error(`${(e as Error).message}\ndriver output:\n${captured.join("\n")}`);
  }
  let stopped: Promise<number> | undefined;
  return {
    socketPath,
    client,
    process,
    output: () => captured.join("\n"),
    async *lines() {
      let i = 0;
      for (;;) {
        while (i < captured.length) yield captured[i++];
        if (closed) return;
        await new Promise<void>((r) => {
          const w = () => {
            waiters.delete(w);
            r();
          };
          waiters.add(w);
        });
      }
    },
    async waitForOutput(pattern: RegExp, timeoutMs = 10_000) {
      const deadline = setTimeout(() => waiters.forEach((w) => w()), timeoutMs);
      const started = performance.now();
      try {
        for await (const line of (this as RunningDriver).lines()) {
          if (pattern.test(line)) return line;
          if (performance.now() - started > timeoutMs) break;
        }
      } finally {
        clearTimeout(deadline);
      }
      throw new Error(`no output line matched ${pattern} within ${timeoutMs} ms`);
    },
    stop: () =>
      stopped ??= (async () => {
        client.close();
        try {
          process.kill("SIGTERM");
        } catch { /* it already exited: a test that checks for that says so */ }
        const status = await process.status;
        await pumps;
        assert(
          !(await pathExists(socketPath, { followSymlinks: false })),
          `socket ${socketPath} still exists after the driver stopped (exit ${status.code}); ` +
            `output:\n${captured.join("\n")}`,
        );
        return status.code;
      })(),
  };
}

async function waitForProbe(
  client: CsiClient,
  process: Deno.ChildProcess,
  o: { timeoutMs: number; captured: string[] },
): Promise<void> {
  const deadline = Date.now() + o.timeoutMs;
  let exited = false;
  process.status.then(() => exited = true);
  let last: unknown;
  while (Date.now() < deadline) {
    if (exited) throw new Error("driver exited before it answered Probe");
    try {
      const res = await client.identity.Probe({}, 1000);
      if (res.ready?.value === true) return;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`driver did not answer Probe within ${o.timeoutMs} ms: ${String(last)}`);
}
