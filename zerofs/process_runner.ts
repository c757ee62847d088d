/**
 * The `process` ZeroFS runner: one detached `zerofs run -c config.toml`
 * per volume (own session, so it outlives the node agent), its log and a small
 * ZeroFS process record in the volume's state directory.
 *
 * State directory files: `config.toml` (0600), `zerofs.log`, and `zerofs.pid`
 * — the {@linkcode ZerofsProcessRecord} (pid, process start time, config hash,
 * sockets), written atomically after the spawn. Liveness is read from `/proc/<pid>`
 * (after an agent restart the process is not our child): the start time and
 * `/proc/<pid>/cmdline` (`-c <this config>`) must both match, so a reused pid
 * is never mistaken for ZeroFS. A crash between spawn and record is covered by
 * scanning `/proc` for a process running this volume's config path.
 *
 * Callers serialise calls per volume (the CSI per-volume lock).
 *
 * @module
 */

import { liveStartTicks, processArgv, spawnDetached } from "../blockdev/mod.ts";
import { removeFileIfExists, writeFileAtomic } from "./atomic_file.ts";
import {
  checkSocketPath,
  rotatedLogPath,
  stateDirFiles,
  volumeCacheDir,
  type VolumePaths,
} from "./paths.ts";
import { checkReady, waitUntilReady } from "./readiness.ts";
import type { VolumeSettings } from "./settings.ts";
import { secretEnv, type SecretValues } from "./secrets.ts";
import { zerofsConfigOf, zerofsRunArgs } from "./run_argv.ts";
import { removeSockets } from "./stale_sockets.ts";
import type { InstanceSpec, InstanceStatus, RunnerView, ZeroFsRunner } from "./runner.ts";
import { SettingsError } from "./types.ts";
import { detectBinaryVersion, type ZeroFsVersion } from "./version.ts";
import { defineRecord, readRecordFile, writeRecordFile } from "./record_file.ts";

const STOP_POLL_MS = 50;
/** After SIGKILL the kernel needs a moment; past this the process is reported stuck. */
const KILL_WAIT_MS = 5_000;
/** A ZeroFS that never became ready has nothing to flush worth waiting the full grace for. */
const FAILED_START_GRACE_MS = 10_000;
const STATUS_CHECK_TIMEOUT_MS = 2_000;
const LOG_TAIL_LINES = 20;
const LOG_TAIL_BYTES = 16 * 1024;
/** zerofs.log is rotated to zerofs.log.1 at start once it grows past this. */
const LOG_ROTATE_BYTES = 8 * 1024 * 1024;

/** Where the runner's log lines go (structurally a csi `Logger`). */
export interface RunnerLog {
  log(
    level: "debug" | "info" | "warn" | "error",
    msg: string,
    fields?: Record<string, unknown>,
  ): void;
}

/** Options for {@linkcode ProcessRunner}. */
export interface ProcessRunnerOptions {
  /** ZeroFS executable (name on PATH or absolute path). Default `zerofs`. */
  zerofsBin?: string;
  /** How long stop() waits after SIGTERM before SIGKILL. Default 120 s (ZeroFS's final flush). */
  stopGraceMs?: number;
  /** How long ensure() waits for real handshakes after a start. Default 60 s. */
  readyTimeoutMs?: number;
  log?: RunnerLog;
}

/** Which process runs a volume's ZeroFS, and with what (`zerofs.pid`). */
export interface ZerofsProcessRecord {
  volumeId: string;
  pid: number;
  /** /proc/<pid>/stat field 22: tells a reused pid from ours. */
  startTicks: number;
  configHash: string;
  configPath: string;
  ninepSocket: string;
  nbdSocket: string;
  exportName: string;
  readOnly: boolean;
  startedAt: string;
}

/** The stored form of a {@linkcode ZerofsProcessRecord} (schema 1). */
const ZEROFS_PROCESS_RECORD = defineRecord<ZerofsProcessRecord>({
  kind: "ZeroFS process record",
  schema: 1,
  remedy: "stop the process it names by hand and delete the file",
  validate: (f) => ({
    volumeId: f.string("volumeId"),
    pid: f.integer("pid"),
    startTicks: f.integer("startTicks"),
    configHash: f.string("configHash"),
    configPath: f.string("configPath"),
    ninepSocket: f.string("ninepSocket"),
    nbdSocket: f.string("nbdSocket"),
    exportName: f.string("exportName"),
    readOnly: f.boolean("readOnly"),
    startedAt: f.string("startedAt"),
  }),
});

/** Files of one state directory the runner uses. */
function runnerFiles(stateDir: string) {
  const files = stateDirFiles(stateDir);
  return { config: files.configToml, log: files.zerofsLog, record: files.zerofsPid };
}

/**
 * Runs each volume's ZeroFS as a detached local process.
 *
 * @example
 * ```ts
 * const runner = new ProcessRunner({ zerofsBin: "/usr/local/bin/zerofs" });
 * await runner.ensure(spec); // running with exactly spec.configHash, handshakes pass
 * await runner.stop(spec.volumeId, spec.stateDir);
 * ```
 */
export class ProcessRunner implements ZeroFsRunner {
  /** The launcher runs ZeroFS under umask 077. */
  readonly createsPrivateSockets = true;
  readonly #bin: string;
  readonly #stopGraceMs: number;
  readonly #readyTimeoutMs: number;
  readonly #log: RunnerLog;
  #version?: Promise<ZeroFsVersion>;

  constructor(opts: ProcessRunnerOptions = {}) {
    this.#bin = opts.zerofsBin ?? "zerofs";
    this.#stopGraceMs = opts.stopGraceMs ?? 120_000;
    this.#readyTimeoutMs = opts.readyTimeoutMs ?? 60_000;
    this.#log = opts.log ?? { log() {} };
  }

  /**
   * Running with exactly this config and ready, or throws
   * (`ZeroFsNotReadyError` with the log tail when it does not become ready).
   * Same hash and alive → no restart; changed hash → stop, then start.
   */
  async ensure(spec: InstanceSpec): Promise<InstanceStatus> {
    checkSocketPath(spec.ninepSocket);
    checkSocketPath(spec.nbdSocket);
    const record = await this.#liveRecord(spec.stateDir);
    if (record && record.configHash === spec.configHash) {
      await this.#waitReady(spec, record);
      return runningStatus(spec.volumeId, record);
    }
    if (record) {
      this.#log.log("info", "ZeroFS config changed: restarting", { volumeId: spec.volumeId });
    }
    await this.stop(spec.volumeId, spec.stateDir);
    const started = await this.#start(spec);
    try {
      await this.#waitReady(spec, started);
    } catch (e) {
      await this.#stopRecorded(started, Math.min(this.#stopGraceMs, FAILED_START_GRACE_MS));
      await this.#clear(spec.stateDir, started);
      throw e;
    }
    return runningStatus(spec.volumeId, started);
  }

  /** The release of the configured binary (`zerofs --version`), asked once; a failure is retried next call. */
  version(): Promise<ZeroFsVersion> {
    this.#version ??= detectBinaryVersion(this.#bin).catch((e) => {
      this.#version = undefined;
      throw e;
    });
    return this.#version;
  }

  /** A local process sees host paths and gets secret values as its environment. */
  view(opts: { paths: VolumePaths; settings: VolumeSettings; secrets: SecretValues }): RunnerView {
    if (opts.settings.envoyEnabled) {
      throw new SettingsError(
        `"envoyEnabled" is "true", but the Envoy sidecar exists only in pod mode: run the node ` +
          `with --runner=pod, or set "envoyEnabled" to "false" (or remove it) in the ConfigMap`,
      );
    }
    const env = secretEnv(opts.secrets);
    return {
      ninepSocket: opts.paths.ninepSocket,
      nbdSocket: opts.paths.nbdSocket,
      cacheDir: volumeCacheDir(opts.settings.cacheDir, opts.paths.dir),
      secretEnvNames: Object.keys(env),
      secretEnv: env,
    };
  }

  /**
   * SIGTERM, wait up to the grace period, then SIGKILL with a warning. Removes
   * the record and the socket files. Idempotent: nothing running is success.
   */
  async stop(volumeId: string, stateDir: string): Promise<void> {
    const files = runnerFiles(stateDir);
    const record = await readRecordFile(ZEROFS_PROCESS_RECORD, files.record);
    const pids = new Set(await findProcessesUsingConfig(files.config));
    if (record && await isSameProcess(record)) pids.add(record.pid);
    for (const pid of pids) {
      const startTicks = await readStartTicks(pid);
      if (startTicks === null) continue;
      await this.#terminate({ volumeId, pid, startTicks }, this.#stopGraceMs);
    }
    if (record) await this.#clear(stateDir, record);
  }

  /** What is running for this volume, with a fresh handshake check. */
  async status(volumeId: string, stateDir: string): Promise<InstanceStatus> {
    const files = runnerFiles(stateDir);
    const record = await readRecordFile(ZEROFS_PROCESS_RECORD, files.record);
    if (!record) return { volumeId, running: false, ready: false, reason: "not started" };
    if (!(await isSameProcess(record))) {
      return {
        volumeId,
        running: false,
        ready: false,
        configHash: record.configHash,
        reason: `ZeroFS (pid ${record.pid}) is no longer running; see ${files.log}`,
      };
    }
    const check = await checkReady(record, { timeoutMs: STATUS_CHECK_TIMEOUT_MS });
    return { ...runningStatus(volumeId, record), ready: check.ready, reason: check.reason };
  }

  /** The record, if its process is still the ZeroFS it names. */
  async #liveRecord(stateDir: string): Promise<ZerofsProcessRecord | null> {
    const record = await readRecordFile(ZEROFS_PROCESS_RECORD, runnerFiles(stateDir).record);
    if (!record) return null;
    if (await isSameProcess(record)) return record;
    this.#log.log("info", "ZeroFS recorded for this volume is gone: starting fresh", {
      volumeId: record.volumeId,
      pid: record.pid,
    });
    return null;
  }

  async #start(spec: InstanceSpec): Promise<ZerofsProcessRecord> {
    const files = runnerFiles(spec.stateDir);
    await writeFileAtomic(files.config, spec.configToml);
    await removeSockets(spec);
    await rotateLog(files.log);
    const args = zerofsRunArgs(files.config, spec.readOnly);
    const pid = await spawnDetached(this.#bin, args, {
      logPath: files.log,
      env: zerofsEnvironment(spec.secretEnv),
    });
    const startTicks = await readStartTicksOfNew(pid);
    const record: ZerofsProcessRecord = {
      volumeId: spec.volumeId,
      pid,
      startTicks: startTicks ?? -1,
      configHash: spec.configHash,
      configPath: files.config,
      ninepSocket: spec.ninepSocket,
      nbdSocket: spec.nbdSocket,
      exportName: spec.exportName,
      readOnly: spec.readOnly,
      startedAt: new Date().toISOString(),
    };
    await writeRecordFile(ZEROFS_PROCESS_RECORD, files.record, record);
    this.#log.log("info", "ZeroFS started", { volumeId: spec.volumeId, pid, bin: this.#bin });
    return record;
  }

  #waitReady(spec: InstanceSpec, record: ZerofsProcessRecord): Promise<void> {
    return waitUntilReady(spec, {
      timeoutMs: this.#readyTimeoutMs,
      isAlive: () => isSameProcess(record),
      logTail: () => readLogTail(runnerFiles(spec.stateDir).log),
    });
  }

  async #stopRecorded(record: ZerofsProcessRecord, graceMs: number): Promise<void> {
    if (await isSameProcess(record)) await this.#terminate(record, graceMs);
  }

  async #terminate(
    target: { volumeId: string; pid: number; startTicks: number },
    graceMs: number,
  ): Promise<void> {
    signal(target.pid, "SIGTERM");
    if (await waitForExit(target, graceMs)) return;
    this.#log.log("warn", "ZeroFS did not exit within the grace period after SIGTERM: SIGKILL", {
      volumeId: target.volumeId,
      pid: target.pid,
      graceMs,
    });
    signal(target.pid, "SIGKILL");
    if (!(await waitForExit(target, KILL_WAIT_MS))) {
      throw new Error(
        `Cannot stop ZeroFS of volume "${target.volumeId}": pid ${target.pid} survived SIGKILL ` +
          `for ${KILL_WAIT_MS} ms (stuck in the kernel?); check it with ps and retry.`,
      );
    }
  }

  async #clear(stateDir: string, record: ZerofsProcessRecord): Promise<void> {
    await removeSockets(record);
    await removeFileIfExists(runnerFiles(stateDir).record);
  }
}

/**
 * Variables of the agent's environment ZeroFS may see: how to find programs,
 * its logging, TLS trust and proxies, and its own `ZEROFS_*` namespace.
 * Nothing else of the agent's environment reaches it.
 */
const ZEROFS_PASSED_ENV: readonly string[] = [
  "PATH",
  "HOME",
  "TZ",
  "RUST_LOG",
  "RUST_BACKTRACE",
  "SSL_CERT_FILE",
  "SSL_CERT_DIR",
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "NO_PROXY",
  "http_proxy",
  "https_proxy",
  "no_proxy",
];

/**
 * ZeroFS's whole environment: the few variables of {@linkcode ZEROFS_PASSED_ENV}
 * (and `ZEROFS_*`) the agent has, then the volume's secret variables over them.
 *
 * @example
 * ```ts
 * zerofsEnvironment({ ZEROFS_ENCRYPTION_PASSWORD: "…" }, { PATH: "/bin", KUBECONFIG: "/k" });
 * // → { PATH: "/bin", ZEROFS_ENCRYPTION_PASSWORD: "…" }
 * ```
 */
export function zerofsEnvironment(
  secretEnv: Record<string, string>,
  agentEnv: Record<string, string> = Deno.env.toObject(),
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(agentEnv)) {
    if (ZEROFS_PASSED_ENV.includes(name) || name.startsWith("ZEROFS_")) env[name] = value;
  }
  env.PATH ??= "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  return { ...env, ...secretEnv };
}

function runningStatus(volumeId: string, record: ZerofsProcessRecord): InstanceStatus {
  return { volumeId, running: true, ready: true, pid: record.pid, configHash: record.configHash };
}

const RECHECK_DELAY_MS = 50;

/**
 * Whether the recorded process is still this volume's ZeroFS. A "no" is
 * confirmed once after a short pause: while the launcher and the wrapper
 * script exec their way to ZeroFS, /proc can answer oddly for an instant, and
 * a false "exited" fails a stage that would have succeeded.
 */
async function isSameProcess(record: ZerofsProcessRecord): Promise<boolean> {
  if (await looksLikeSameProcess(record)) return true;
  await new Promise((r) => setTimeout(r, RECHECK_DELAY_MS));
  return await looksLikeSameProcess(record);
}

/** One look: alive, not a zombie, same start time, and still running this config. */
async function looksLikeSameProcess(record: ZerofsProcessRecord): Promise<boolean> {
  const startTicks = await readStartTicks(record.pid);
  if (startTicks === null || startTicks !== record.startTicks) return false;
  // An empty cmdline is the instant of an exec (a wrapper script exec'ing ZeroFS); the start time matched.
  const argv = await readCmdline(record.pid);
  return argv.length === 0 || zerofsConfigOf(argv) === record.configPath;
}

/**
 * The start time of a process just spawned. Reading /proc while it execs
 * (the launcher exec'ing ZeroFS) can fail for an instant, so a few quick
 * retries; null only when it is really gone.
 */
async function readStartTicksOfNew(pid: number): Promise<number | null> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const ticks = await readStartTicks(pid);
    if (ticks !== null) return ticks;
    await new Promise((r) => setTimeout(r, 5));
  }
  return null;
}

/** The process's start time (its identity with the pid); null when gone or a zombie. */
async function readStartTicks(pid: number): Promise<number | null> {
  return (await liveStartTicks(pid)) ?? null;
}

async function readCmdline(pid: number): Promise<string[]> {
  return (await processArgv(pid)) ?? [];
}

/** Every live process whose argv runs `configPath` (covers a crash before the record was written). */
async function findProcessesUsingConfig(configPath: string): Promise<number[]> {
  const pids: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const pid = Number(entry.name);
    if (pid === Deno.pid) continue;
    if (zerofsConfigOf(await readCmdline(pid)) === configPath) pids.push(pid);
  }
  return pids;
}

async function waitForExit(
  target: { pid: number; startTicks: number },
  timeoutMs: number,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ticks = await readStartTicks(target.pid);
    if (ticks === null || ticks !== target.startTicks) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, STOP_POLL_MS));
  }
}

function signal(pid: number, sig: "SIGTERM" | "SIGKILL"): void {
  try {
    Deno.kill(pid, sig);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

async function rotateLog(path: string): Promise<void> {
  const info = await Deno.stat(path).catch(() => null);
  if (info && info.size > LOG_ROTATE_BYTES) await Deno.rename(path, rotatedLogPath(path));
}

/** The last lines of the ZeroFS log (reads only its end). */
export async function readLogTail(path: string, lines = LOG_TAIL_LINES): Promise<string> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return "";
    throw e;
  }
  try {
    const size = (await file.stat()).size;
    const start = Math.max(0, size - LOG_TAIL_BYTES);
    await file.seek(start, Deno.SeekMode.Start);
    const buffer = new Uint8Array(size - start);
    let filled = 0;
    while (filled < buffer.length) {
      const n = await file.read(buffer.subarray(filled));
      if (n === null) break;
      filled += n;
    }
    const text = new TextDecoder().decode(buffer.subarray(0, filled));
    return text.trimEnd().split("\n").slice(-lines).join("\n");
  } finally {
    file.close();
  }
}
