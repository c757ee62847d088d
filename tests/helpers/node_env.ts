/**
 * A controller and a node agent started through `main.ts` under their real
 * permission sets, with the real ZeroFS (or, where a test asks for it, the
 * stand-in) on PATH, a real S3 server, a settings file and a private state
 * directory — the setting of the node integration tests, the demo and the
 * benchmark.
 *
 * @module
 */

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import {
  isProcessAlive,
  listLoopDevices,
  processArgv,
  readMountInfo,
  readProcessStat,
} from "../../blockdev/mod.ts";
import { FAILPOINT_EXIT_CODE, type NodeVolumeState } from "../../csi/mod.ts";
import { volumePaths } from "../../zerofs/mod.ts";
import { type LocalS3, startS3 } from "../fixtures/s3.ts";
import { STANDIN_BIN, STANDIN_ROOT_ENV } from "../fixtures/zerofs_standin/mod.ts";
import { realZeroFsBin } from "../fixtures/zerofs.ts";
import { CsiCallError, type CsiClient } from "./csi_client.ts";
import { makeTestDir, REPO_ROOT, type RunningDriver, startDriver } from "./driver.ts";
import { expectCode } from "./volume_steps.ts";

/** A running controller + node pair and the paths around them. */
export interface NodeEnvironment {
  dir: string;
  stateDir: string;
  controller: RunningDriver;
  node: RunningDriver;
  /** The S3 endpoint the controller deletes volume prefixes on (bucket `zerofs-test`). */
  s3: LocalS3;
  /** Where kubelet would create staging and target paths. */
  kubeletDir: string;
  /** The ZeroFS binary the node runs. */
  zerofsBin: string;
  /** The settings file both services read at start (`<dir>/settings.toml`). */
  settingsFile: string;
  /**
   * Start a second node agent on the same S3 settings, with its own node ID
   * (`name`), socket and state directory — another node, for tests of what
   * two nodes do to one volume. The caller unstages and stops it.
   */
  startOtherNode(
    name: string,
  ): Promise<{ driver: RunningDriver; stateDir: string; kubeletDir: string }>;
  /**
   * Start the node agent again (after `node.stop()` or a kill); `env` adds
   * variables to this one start only (e.g. `ZEROFS_CSI_FAILPOINTS`).
   */
  restartNode(o?: { env?: Record<string, string> }): Promise<RunningDriver>;
  /** Start the controller again (after `controller.stop()`), on the same state and records. */
  restartController(): Promise<RunningDriver>;
  /**
   * Stop both services and remove the directory (after the test unstaged
   * everything). Every step runs; then it throws if a service did not stop
   * cleanly (e.g. left its socket behind).
   */
  stop(): Promise<void>;
}

/** Options for {@linkcode startNodeEnvironment}. */
export interface NodeEnvironmentOptions {
  /** ZeroFS binary; default: the real, pinned ZeroFS (STANDIN_BIN for the stand-in). */
  zerofsBin?: string;
  attachMode?: "auto" | "userspace" | "kernel";
  /** Root directory for state and sockets; default a fresh /run/zerofs-csi/test-*. */
  dir?: string;
  extraNodeArgs?: string[];
  env?: Record<string, string>;
  /** Lines appended to the settings file, e.g. `[configMaps.<name>]` tables. */
  extraSettings?: string[];
}

/** Where the environment's volumes live on its S3 server (bucket `zerofs-test`). */
export const TEST_STORAGE_URL = "s3://zerofs-test/volumes";

/** A password that satisfies ZeroFS's rules; test-only. */
export const TEST_ENCRYPTION_PASSWORD = 'test-password-$"\\-not-a-secret';

/** Start controller and node agent; the node uses the process runner. */
export async function startNodeEnvironment(
  opts: NodeEnvironmentOptions = {},
): Promise<NodeEnvironment> {
  const dir = opts.dir ?? await makeTestDir();
  const stateDir = join(dir, "state");
  const kubeletDir = join(dir, "kubelet");
  await Deno.mkdir(kubeletDir, { recursive: true });
  const s3 = await startS3({ dir: join(dir, "s3") });
  try {
    await s3.createBucket("zerofs-test");
  } catch (e) {
    await s3.stop();
    throw e;
  }
  const settingsFile = join(dir, "settings.toml");
  await Deno.writeTextFile(
    settingsFile,
    [
      `storageURL = "${TEST_STORAGE_URL}"`,
      `awsEndpoint = "${s3.endpoint}"`,
      `awsAllowHTTP = true`,
      `cacheDiskSizeGB = 1`,
      `cacheDir = "${join(dir, "cache")}"`,
      ``,
      ...(opts.extraSettings ?? []),
      ``,
    ].join("\n"),
  );
  let zerofsBin: string;
  try {
    zerofsBin = opts.zerofsBin ?? realZeroFsBin();
  } catch (e) {
    await s3.stop();
    throw e;
  }
  const env = {
    PATH: `${dirname(zerofsBin)}:${Deno.env.get("PATH")}`,
    ZEROFS_ENCRYPTION_PASSWORD: TEST_ENCRYPTION_PASSWORD,
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    ...(zerofsBin === STANDIN_BIN ? { [STANDIN_ROOT_ENV]: join(dir, "store") } : {}),
    HOME: Deno.env.get("HOME") ?? "/root",
    ...opts.env,
  };
  const startController = () =>
    startDriver({
      mode: "controller",
      args: [
        "--endpoint",
        `unix://${dir}/controller.sock`,
        "--state-dir",
        join(dir, "controller"),
        "--config-source",
        "file",
        "--settings-file",
        settingsFile,
        "--volume-records",
        "local",
        "--node-registry",
        join(dir, "nodes"),
      ],
      env,
    });
  const controller = await startController().catch(async (e) => {
    await s3.stop();
    throw e;
  });
  const nodeArgs = (o: { name: string; stateDir: string; kubeletDir: string }) => [
    "--endpoint",
    `unix://${dir}/${o.name}.sock`,
    "--node-id",
    o.name === "node" ? "test-node" : o.name,
    "--state-dir",
    o.stateDir,
    "--kubelet-dir",
    o.kubeletDir,
    "--attach-mode",
    opts.attachMode ?? "auto",
    "--settings-file",
    settingsFile,
    "--node-registry",
    join(dir, "nodes"),
    ...(opts.extraNodeArgs ?? []),
  ];
  const startNode = (extraEnv: Record<string, string> = {}) =>
    startDriver({
      mode: "node",
      args: nodeArgs({ name: "node", stateDir, kubeletDir }),
      env: { ...env, ...extraEnv },
    });
  const environment: NodeEnvironment = {
    dir,
    stateDir,
    kubeletDir,
    controller,
    s3,
    zerofsBin,
    settingsFile,
    node: await startNode().catch(async (e) => {
      await controller.stop().catch(() => {});
      await s3.stop();
      throw e;
    }),
    async restartNode(o = {}) {
      environment.node = await startNode(o.env);
      return environment.node;
    },
    async restartController() {
      environment.controller = await startController();
      return environment.controller;
    },
    async startOtherNode(name: string) {
      const other = {
        name,
        stateDir: join(dir, `${name}-state`),
        kubeletDir: join(dir, `kubelet-${name}`),
      };
      await Deno.mkdir(other.kubeletDir, { recursive: true });
      const driver = await startDriver({ mode: "node", args: nodeArgs(other), env });
      return { driver, stateDir: other.stateDir, kubeletDir: other.kubeletDir };
    },
    async stop() {
      const problems: string[] = [];
      const attempt = (what: string, step: () => Promise<unknown>) =>
        step().catch((e) => problems.push(`${what}: ${e instanceof Error ? e.message : e}`));
      await attempt("node agent stop", () => stopUnlessKilled(environment.node));
      await attempt("controller stop", () => stopUnlessKilled(environment.controller));
      await s3.stop().catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      if (problems.length > 0) throw new Error(problems.join("\n"));
    },
  };
  return environment;
}

/**
 * Stop a driver, asserting it exits cleanly and removes its socket. One that
 * already exited is fine if a test killed it on purpose (a signal, a
 * failpoint) or stopped it (exit 0, its own stop() checked the socket).
 */
async function stopUnlessKilled(driver: RunningDriver): Promise<void> {
  if (await isProcessAlive(driver.process.pid)) {
    await driver.stop();
    return;
  }
  const exited = await driver.process.status;
  driver.client.close();
  if (exited.signal !== null || exited.code === 0 || exited.code === FAILPOINT_EXIT_CODE) return;
  throw new Error(`it had exited on its own with code ${exited.code}; output:\n${driver.output()}`);
}

/** One process as /proc shows it. */
export interface ProcessInfo {
  pid: number;
  ppid: number;
  /** /proc/<pid>/stat field 22: tells a reused pid from the one we saw. */
  startTicks: number;
  argv: string[];
}

/** Every live (non-zombie) process on the host. */
export async function listProcesses(): Promise<ProcessInfo[]> {
  const out: ProcessInfo[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const info = await readProcess(Number(entry.name));
    if (info) out.push(info);
  }
  return out;
}

async function readProcess(pid: number): Promise<ProcessInfo | undefined> {
  const stat = await readProcessStat(pid);
  if (!stat || stat.state === "Z" || stat.state === "X") return undefined;
  const argv = await processArgv(pid);
  if (!argv) return undefined; // exited while we looked
  return { pid, ppid: stat.ppid, startTicks: stat.startTicks, argv: argv.filter((a) => a !== "") };
}

/** True when the process we saw is still running (same pid and start time). */
export async function isStillRunning(p: ProcessInfo): Promise<boolean> {
  const now = await readProcess(p.pid);
  return now !== undefined && now.startTicks === p.startTicks;
}

/** The state directory of a volume inside the environment. */
export function volumeStateDir(env: NodeEnvironment, volumeId: string): string {
  return volumePaths(env.stateDir, volumeId).dir;
}

/** The node's state.json of a volume, or null when there is none. */
export async function readVolumeState(
  env: NodeEnvironment,
  volumeId: string,
): Promise<NodeVolumeState | null> {
  const text = await Deno.readTextFile(volumePaths(env.stateDir, volumeId).stateJson).catch(
    (e) => {
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    },
  );
  return text === null ? null : JSON.parse(text) as NodeVolumeState;
}

/** The pid of a volume's ZeroFS (stand-in) from its ZeroFS process record `zerofs.pid`. */
export async function zerofsPid(env: NodeEnvironment, volumeId: string): Promise<number> {
  const text = await Deno.readTextFile(volumePaths(env.stateDir, volumeId).zerofsPid);
  return (JSON.parse(text) as { pid: number }).pid;
}

/**
 * The processes serving one staged volume: its ZeroFS stand-in with every
 * descendant (diod, nbdkit) and the nbdfuse helper of a userspace attach.
 * Snapshot them while staged, assert them gone after unstage.
 */
export async function volumeProcesses(
  env: NodeEnvironment,
  volumeId: string,
): Promise<ProcessInfo[]> {
  const all = await listProcesses();
  const roots = new Set<number>([await zerofsPid(env, volumeId)]);
  const helper = (await readVolumeState(env, volumeId))?.attachment?.helperPid;
  if (helper !== undefined) roots.add(helper);
  return withDescendants(roots, all);
}

/** The processes `roots` names and every process below them in `all`. */
export function withDescendants(roots: Set<number>, all: ProcessInfo[]): ProcessInfo[] {
  const found = all.filter((p) => roots.has(p.pid));
  for (let grew = true; grew;) {
    grew = false;
    for (const p of all) {
      if (!found.includes(p) && found.some((f) => f.pid === p.ppid)) {
        found.push(p);
        grew = true;
      }
    }
  }
  return found;
}

/** What a node left on the host under the environment's directory. */
export interface HostLeftovers {
  /** Loop devices whose backing file lies under the environment directory. */
  loopDevices: string[];
  /** Mount points under the environment directory (staging, targets, FUSE). */
  mounts: string[];
  /** Processes other than the two drivers whose command line names the directory. */
  processes: string[];
  /** Unix socket files under the state directory, except the node's CSI socket. */
  sockets: string[];
  /** Volume state directories (`<state>/v/*`). */
  volumeDirs: string[];
}

/** Look for anything the node left behind in this environment. */
export async function findLeftovers(env: NodeEnvironment): Promise<HostLeftovers> {
  const under = (p: string) => p === env.dir || p.startsWith(env.dir + "/");
  const loops = await listLoopDevices();
  const mounts = await readMountInfo();
  const drivers = new Set([env.node.process.pid, env.controller.process.pid]);
  // The S3 server runs for the whole environment; it is not the node's. (The pod tier has none.)
  const s3Dir: string | undefined = env.s3?.dir;
  const isS3Server = (p: ProcessInfo) => s3Dir !== undefined && p.argv.includes(s3Dir);
  const processes = (await listProcesses()).filter((p) =>
    !drivers.has(p.pid) && p.pid !== Deno.pid && !isS3Server(p) &&
    p.argv.some((a) => a.includes(env.dir))
  );
  const volumeDirs: string[] = [];
  const sockets: string[] = [];
  for await (const entry of readDirIfExists(join(env.stateDir, "v"))) {
    volumeDirs.push(join(env.stateDir, "v", entry.name));
  }
  await collectSockets(env.stateDir, sockets);
  return {
    loopDevices: loops.filter((l) => under(l.backingFile)).map((l) =>
      `${l.device} → ${l.backingFile}`
    ),
    mounts: mounts.filter((m) => under(m.mountPoint)).map((m) =>
      `${m.mountPoint} (${m.fsType} ${m.source})`
    ),
    processes: processes.map((p) => `${p.pid}: ${p.argv.join(" ")}`),
    sockets,
    volumeDirs,
  };
}

/**
 * Assert the node left nothing: no loop device, mount, process, socket or
 * volume state directory; and none of `gone` (a snapshot from
 * {@linkcode volumeProcesses}) still runs.
 */
export async function assertNothingLeft(
  env: NodeEnvironment,
  gone: ProcessInfo[] = [],
): Promise<void> {
  const left = await findLeftovers(env);
  const survivors: string[] = [];
  for (const p of gone) {
    if (await isStillRunning(p)) survivors.push(`${p.pid}: ${p.argv.join(" ")}`);
  }
  assert.deepEqual({ ...left, survivors }, {
    loopDevices: [],
    mounts: [],
    processes: [],
    sockets: [],
    volumeDirs: [],
    survivors: [],
  });
}

/**
 * The call fails with `code` (details matching `re`) and leaves the host
 * exactly as it was: no leftover of {@linkcode findLeftovers} and no new path
 * under the kubelet directory. Returns the error's details.
 */
export async function rejectedWithoutTrace(
  env: NodeEnvironment,
  call: () => Promise<unknown>,
  code: number,
  re?: RegExp,
): Promise<string> {
  const before = await findLeftovers(env);
  const kubeletBefore = await listTree(env.kubeletDir);
  const err = await expectCode(call(), code, re);
  assert.deepEqual(await findLeftovers(env), before);
  assert.deepEqual(await listTree(env.kubeletDir), kubeletBefore, "no path created");
  return err.details;
}

/** Every path below `dir`, relative, sorted. */
async function listTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    out.push(e.name);
    if (e.isDirectory) {
      out.push(...(await listTree(join(dir, e.name))).map((n) => `${e.name}/${n}`));
    }
  }
  return out.sort();
}

async function* readDirIfExists(dir: string): AsyncIterable<Deno.DirEntry> {
  try {
    yield* Deno.readDir(dir);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

async function collectSockets(dir: string, out: string[]): Promise<void> {
  for await (const entry of readDirIfExists(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) {
      // A FUSE mount left behind must not hang the walk: mounts are reported separately.
      if ((await readMountInfo()).some((m) => m.mountPoint === path)) continue;
      await collectSockets(path, out);
    } else if ((await Deno.lstat(path)).isSocket) {
      out.push(path);
    }
  }
}

/**
 * Start an environment, run `fn`, and always tear it down: every volume the
 * node still records is unpublished and unstaged through the CSI API (the
 * agent restarted if a test killed it); whatever that could not remove is
 * removed by hand (lazy unmounts, `losetup -d`, SIGKILL), then both drivers
 * stop and the directory goes. Anything the teardown had to remove by hand,
 * a clean-up call that failed, or a driver that did not stop cleanly fails
 * the test (after the clean-up): a leak belongs to the test that made it.
 */
export async function withNodeEnvironment(
  fn: (env: NodeEnvironment) => Promise<void>,
  opts: NodeEnvironmentOptions = {},
): Promise<void> {
  const env = await startNodeEnvironment(opts);
  try {
    await fn(env);
  } catch (e) {
    // The test's own failure comes first; a leak after it is reported, not lost.
    await tearDownNodeEnvironment(env).catch((leak) => console.error(`${leak}`));
    throw e;
  }
  await tearDownNodeEnvironment(env);
}

/** Thrown by the teardown when the test left something behind. */
export class LeftBehindError extends Error {
  constructor(readonly problems: string[]) {
    super(`the test left things behind (cleaned up now):\n- ${problems.join("\n- ")}`);
  }
}

/**
 * Leave nothing behind, whatever state `env` is in: unpublish and unstage
 * every volume the node records (restarting a killed agent first), remove by
 * hand what that could not, then stop both drivers and remove the directory.
 * A volume left staged would outlive the run as a FUSE mount whose daemon is
 * gone once the session ends. Throws {@linkcode LeftBehindError} after all
 * of that when a clean-up call failed, something had to be removed by hand,
 * or a driver did not stop cleanly (its socket left behind).
 */
export async function tearDownNodeEnvironment(env: NodeEnvironment): Promise<void> {
  const problems = await cleanUpVolumes(env).catch((e) => [`clean-up through CSI failed: ${e}`]);
  const left = await forceCleanUp(env);
  if (left) problems.push(`removed by hand: ${JSON.stringify(left)}`);
  await env.stop().catch((e) => problems.push(`${e instanceof Error ? e.message : e}`));
  if (problems.length > 0) throw new LeftBehindError(problems);
}

const CLEANUP_CALL_MS = 60_000;

function cleanUpVolumes(env: NodeEnvironment): Promise<string[]> {
  return unstageThroughLiveAgentReporting({
    node: () => env.node,
    restart: () => env.restartNode(),
    stateDir: env.stateDir,
  });
}

/** Where a node agent runs and how to start it again. */
interface LiveAgent {
  node: () => RunningDriver;
  restart: () => Promise<unknown>;
  stateDir: string;
}

/**
 * Make sure the node agent answers (restarting it if a test killed it), then
 * unpublish and unstage everything its state directory records; throws
 * after trying them all if any call failed.
 */
export async function unstageThroughLiveAgent(o: LiveAgent): Promise<void> {
  const failures = await unstageThroughLiveAgentReporting(o);
  if (failures.length > 0) throw new Error(`clean-up calls failed: ${failures.join("; ")}`);
}

/** {@linkcode unstageThroughLiveAgent}, returning the failed calls instead of throwing. */
async function unstageThroughLiveAgentReporting(o: LiveAgent): Promise<string[]> {
  const alive = await o.node().client.node.NodeGetCapabilities({}, 2_000).then(
    () => true,
    () => false,
  );
  if (!alive) {
    // Killed by the test: its socket is stale by design, the restart replaces it.
    await o.node().stop().catch(() => {});
    await o.restart();
  }
  return await unstageRecordedVolumes(o.node().client, o.stateDir);
}

/**
 * Unpublish and unstage, through the CSI API, every volume a node's state
 * directory still records (test clean-up). Failures are printed and
 * returned, never thrown, so that every volume gets its turn.
 */
export async function unstageRecordedVolumes(
  client: CsiClient,
  stateDir: string,
): Promise<string[]> {
  const failures: string[] = [];
  const note = (what: string) => (e: unknown) => {
    console.error(`cleanup: ${what}: ${e}`);
    failures.push(`${what}: ${e}`);
  };
  for await (const entry of readDirIfExists(join(stateDir, "v"))) {
    const text = await Deno.readTextFile(join(stateDir, "v", entry.name, "state.json"))
      .catch(() => null);
    if (text === null) continue;
    const state = JSON.parse(text) as NodeVolumeState;
    for (const t of state.publishedTargets) {
      await whenNotBusy(() =>
        client.node.NodeUnpublishVolume(
          { volume_id: state.volumeId, target_path: t.path },
          CLEANUP_CALL_MS,
        )
      ).catch(note(`unpublish ${t.path}`));
    }
    await whenNotBusy(() =>
      client.node.NodeUnstageVolume(
        { volume_id: state.volumeId, staging_target_path: state.stagingPath },
        CLEANUP_CALL_MS,
      )
    ).catch(note(`unstage ${state.volumeId}`));
  }
  return failures;
}

/** gRPC ABORTED: the volume is busy with another call. */
const ABORTED = 10;

/**
 * Call `fn`, and again while it answers ABORTED, for up to CLEANUP_CALL_MS:
 * a clean-up that starts while a stage is still running (an interrupted demo,
 * a timed-out test) must wait for it, not leave it staged.
 */
async function whenNotBusy<T>(fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + CLEANUP_CALL_MS;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof CsiCallError) || e.code !== ABORTED || Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Remove by hand what the CSI calls left; returns what that was, if anything. */
async function forceCleanUp(env: NodeEnvironment): Promise<HostLeftovers | undefined> {
  const left = await findLeftovers(env);
  if (Object.values(left).every((list) => list.length === 0)) return undefined;
  console.error(`cleanup by hand: ${JSON.stringify(left, null, 2)}`);
  await removeLeftoversUnder(
    env.dir,
    new Set([env.node.process.pid, env.controller.process.pid, Deno.pid]),
  );
  return left;
}

/**
 * What the CSI calls could not remove under `dir`: lazy unmounts, loop
 * devices, and every process naming `dir` except `keepPids`.
 */
export async function removeLeftoversUnder(dir: string, keepPids: Set<number>): Promise<void> {
  const under = (p: string) => p.startsWith(dir + "/");
  // Listed before the unmounts: once a FUSE mount is detached, its loop
  // device's backing file reads as "/nbd", no longer under `dir`.
  const loops = (await listLoopDevices()).filter((l) => under(l.backingFile));
  const mounts = (await readMountInfo()).filter((m) => under(m.mountPoint)).reverse();
  for (const m of mounts) await quiet("umount", ["-l", m.mountPoint]);
  for (const l of loops) await quiet("losetup", ["-d", l.device]);
  for (const p of await listProcesses()) {
    if (!keepPids.has(p.pid) && p.argv.some((a) => a.includes(dir))) {
      try {
        Deno.kill(p.pid, "SIGKILL");
      } catch { /* gone */ }
    }
  }
}

async function quiet(cmd: string, args: string[]): Promise<void> {
  await new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).output().catch(() => {});
}

/** What an operator's `zerofs-csi` command printed, and how it exited. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Run `zerofs-csi <args>` on the environment's host under the node's
 * permission set, as an operator would, with the environment's credentials.
 */
export async function runNodeCli(env: NodeEnvironment, args: string[]): Promise<CliResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-P=node", "--config", join(REPO_ROOT, "deno.json"), join(REPO_ROOT, "main.ts")]
      .concat(args),
    env: {
      NO_COLOR: "1",
      PATH: `${join(env.zerofsBin, "..")}:${Deno.env.get("PATH")}`,
      ZEROFS_ENCRYPTION_PASSWORD: TEST_ENCRYPTION_PASSWORD,
      AWS_ACCESS_KEY_ID: env.s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: env.s3.secretAccessKey,
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}
