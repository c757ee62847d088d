/**
 * `zerofs-csi doctor`: checks whether this node can run the node service —
 * the nbd module and devices (or the userspace fallback's FUSE and loop), the
 * host tools and their versions, kernel filesystems, the state directory and
 * its socket-path length, and root — and says how to fix what is missing.
 *
 * Read-only: it looks at sysfs, /dev, /proc and the state directory and runs
 * `<tool> --version` and `modprobe -n` (dry run); it changes nothing. With
 * access to the Kubernetes API it also lists what the original Go driver left
 * in the driver namespace (`doctor_leftovers.ts`).
 *
 * @example
 * ```ts
 * const report = await runDoctor({ stateDir: "/var/lib/zerofs-csi" });
 * console.log(formatDoctorReport(report));
 * Deno.exit(report.ok ? 0 : 1);
 * ```
 *
 * @module
 */

import { dirname, isAbsolute } from "node:path";
import {
  type AttachMode,
  autoAttachMode,
  isKernelModuleAvailable,
  type NbdAvailability,
  pathExists,
  readMountInfo,
  type Runner,
  runTool,
  ToolError,
} from "../../blockdev/mod.ts";
import { checkSocketPath, MAX_SOCKET_PATH_BYTES, volumePaths } from "../../zerofs/mod.ts";
import type { KubeClient } from "../../kube/mod.ts";
import { NodeStateStore, scanOrphans } from "../node/mod.ts";
import type { CheckSeverity, DoctorCheck } from "./doctor_check.ts";
import { findOriginalLeftovers, leftoverChecks } from "./doctor_leftovers.ts";

export type { CheckSeverity, DoctorCheck } from "./doctor_check.ts";

/** The whole diagnosis. */
export interface DoctorReport {
  /** False only when a check of severity `error` failed. */
  ok: boolean;
  requestedAttachMode: AttachMode | "auto";
  /** The backend the node would use (`auto` resolved like `selectAttacher`). */
  attachMode: AttachMode;
  checks: DoctorCheck[];
}

/** Options of {@linkcode runDoctor}. */
export interface DoctorOptions {
  /** The node's `--state-dir`. */
  stateDir: string;
  /** Default `auto`. */
  attachMode?: AttachMode | "auto";
  runner?: Runner;
  /** Default `/sys`. */
  sysRoot?: string;
  /** Default `/dev`. */
  devRoot?: string;
  /** Default `/proc`. */
  procRoot?: string;
  /** Effective uid; default `Deno.uid()`. */
  uid?: number | null;
  /** Bound for each `--version` / `modprobe -n` call; default 5000. */
  toolTimeoutMs?: number;
  /**
   * Where to look for the original driver's leftover pods and Secrets, or why
   * the API cannot be reached (reported as not checked). Absent: not looked for.
   */
  kube?: { client: KubeClient; namespace: string } | { unavailable: string };
}

/** A host tool the node may run, how to ask its version and where Debian ships it. */
export interface HostTool {
  tool: string;
  versionArgs: readonly string[];
  /** Exit codes that still mean "this printed its version". */
  versionExitCodes?: readonly number[];
  debianPackage: string;
  /** When the node needs it. */
  neededFor: "always" | "kernel" | "userspace" | "xfs" | "btrfs" | "modules";
}

/** Every host tool the node service runs (besides `zerofs`, which the runner checks). */
export const HOST_TOOLS: readonly HostTool[] = [
  {
    tool: "nbd-client",
    versionArgs: ["--version"],
    debianPackage: "nbd-client",
    neededFor: "kernel",
  },
  {
    tool: "nbdfuse",
    versionArgs: ["--version"],
    debianPackage: "libnbd-bin",
    neededFor: "userspace",
  },
  { tool: "losetup", versionArgs: ["--version"], debianPackage: "mount", neededFor: "userspace" },
  {
    tool: "fusermount3",
    versionArgs: ["--version"],
    debianPackage: "fuse3",
    neededFor: "userspace",
  },
  { tool: "blkid", versionArgs: ["--version"], debianPackage: "util-linux", neededFor: "always" },
  { tool: "mount", versionArgs: ["--version"], debianPackage: "mount", neededFor: "always" },
  { tool: "umount", versionArgs: ["--version"], debianPackage: "mount", neededFor: "always" },
  { tool: "mkfs.ext4", versionArgs: ["-V"], debianPackage: "e2fsprogs", neededFor: "always" },
  // resize2fs has no version flag; with no arguments it prints its version and usage, exit 1.
  {
    tool: "resize2fs",
    versionArgs: [],
    versionExitCodes: [1],
    debianPackage: "e2fsprogs",
    neededFor: "always",
  },
  { tool: "mkfs.xfs", versionArgs: ["-V"], debianPackage: "xfsprogs", neededFor: "xfs" },
  { tool: "xfs_growfs", versionArgs: ["-V"], debianPackage: "xfsprogs", neededFor: "xfs" },
  {
    tool: "mkfs.btrfs",
    versionArgs: ["--version"],
    debianPackage: "btrfs-progs",
    neededFor: "btrfs",
  },
  { tool: "btrfs", versionArgs: ["--version"], debianPackage: "btrfs-progs", neededFor: "btrfs" },
  { tool: "modprobe", versionArgs: ["--version"], debianPackage: "kmod", neededFor: "modules" },
];

const DEFAULT_TOOL_TIMEOUT_MS = 5_000;
/** The longest volume ID the driver accepts (CSI's maximum name length). */
const LONGEST_VOLUME_ID = "v".repeat(128);
/** Suggested when loading nbd: one device per volume the node may hold. */
const SUGGESTED_NBDS_MAX = 64;

/**
 * The first line `tool` prints about its version. Throws {@linkcode ToolError}
 * (exit code `null` when the tool is not installed).
 */
export async function toolVersion(
  tool: string,
  opts: { runner?: Runner; timeoutMs?: number } = {},
): Promise<string> {
  const spec = HOST_TOOLS.find((t) => t.tool === tool);
  if (!spec) throw new RangeError(`Cannot ask "${tool}" for its version: not a known host tool.`);
  const { stdout, stderr } = await (opts.runner ?? runTool)(tool, spec.versionArgs, {
    timeoutMs: opts.timeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS,
    okExitCodes: spec.versionExitCodes,
  });
  const line = `${stdout}\n${stderr}`.split("\n").map((l) => l.trim()).find((l) => l !== "");
  return line ?? "(printed no version)";
}

interface Roots {
  sys: string;
  dev: string;
  proc: string;
}

interface Context {
  roots: Roots;
  runner: Runner;
  timeoutMs: number;
  uid: number | null;
  stateDir: string;
}

/** What the kernel says about nbd. */
interface NbdFacts {
  loaded: boolean;
  /** `modprobe -n` found it; undefined when modprobe could not be asked. */
  loadable: boolean | undefined;
  modprobeError?: string;
  nbdsMax?: number;
  sysfsDevices: number;
  devNodes: number;
  devNbd0: boolean;
  /** sysfs or /dev could not be read. */
  readError?: string;
}

/**
 * Diagnose this node. Never throws: a check that cannot be made is reported
 * as failed with the reason.
 */
export async function runDoctor(opts: DoctorOptions): Promise<DoctorReport> {
  const ctx: Context = {
    roots: {
      sys: opts.sysRoot ?? "/sys",
      dev: opts.devRoot ?? "/dev",
      proc: opts.procRoot ?? "/proc",
    },
    runner: opts.runner ?? runTool,
    timeoutMs: opts.toolTimeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS,
    uid: opts.uid !== undefined ? opts.uid : currentUid(),
    stateDir: opts.stateDir,
  };
  const requested = opts.attachMode ?? "auto";
  const nbd = await nbdFacts(ctx).catch((e): NbdFacts => ({
    loaded: false,
    loadable: undefined,
    readError: errorText(e),
    sysfsDevices: 0,
    devNodes: 0,
    devNbd0: false,
  }));
  const attachMode = requested !== "auto" ? requested : await autoAttachMode(predictedNbd(nbd));

  const checks: DoctorCheck[] = [
    checkRoot(ctx.uid),
    checkNbdModule(nbd, requested, await kernelRelease(ctx).catch(() => "unknown")),
    checkNbdDevices(nbd, attachMode),
    ...await Promise.all([
      guarded("/dev/fuse", userspaceSeverity(attachMode), () => checkFuseDevice(ctx, attachMode)),
      guarded(
        "/dev/loop-control",
        userspaceSeverity(attachMode),
        () => checkLoopControl(ctx, attachMode),
      ),
    ]),
    ...await Promise.all(HOST_TOOLS.map((t) => checkTool(ctx, t, attachMode))),
    ...await Promise.all(
      (["ext4", "xfs", "btrfs"] as const).map((fs) =>
        guarded(
          `filesystem ${fs}`,
          fs === "ext4" ? "error" : "warning",
          () => checkKernelFilesystem(ctx, fs),
        )
      ),
    ),
    checkSocketPaths(ctx.stateDir),
    await guarded("state dir", "error", () => checkStateDir(ctx)),
    await guarded("orphans", "warning", () => checkOrphans(ctx)),
    ...await originalDriverChecks(opts.kube),
  ];
  return {
    ok: !checks.some((c) => !c.ok && c.severity === "error"),
    requestedAttachMode: requested,
    attachMode,
    checks,
  };
}

/** Devices, mounts and ZeroFS processes under the state dir that no volume record owns. */
async function checkOrphans(ctx: Context): Promise<DoctorCheck> {
  const records = await new NodeStateStore(ctx.stateDir).list();
  const orphans = await scanOrphans(ctx.stateDir, records, {
    sysRoot: ctx.roots.sys,
    procRoot: ctx.roots.proc,
  });
  if (orphans.length === 0) {
    return {
      name: "orphans",
      ok: true,
      severity: "warning",
      detail: `every device, mount and ZeroFS process of ${ctx.stateDir} has a volume record`,
    };
  }
  return {
    name: "orphans",
    ok: false,
    severity: "warning",
    detail: `${orphans.length} left behind that no volume record owns: ` +
      orphans.map((o) => `${o.kind} ${o.what}: ${o.detail}`).join("; "),
    fix: "zerofs-csi never removes these itself (nothing proves them unused). Check that no " +
      "workload uses each (`lsblk`, `findmnt`), then remove it as its entry says: mounts " +
      "first, then loop/nbd devices, then ZeroFS processes.",
  };
}

async function originalDriverChecks(kube: DoctorOptions["kube"]): Promise<DoctorCheck[]> {
  if (!kube) return [];
  if ("unavailable" in kube) {
    return [{
      name: "original driver leftovers",
      ok: false,
      severity: "info",
      detail: `not checked: ${kube.unavailable}`,
    }];
  }
  return leftoverChecks(await findOriginalLeftovers(kube.client, kube.namespace));
}

function currentUid(): number | null {
  try {
    return Deno.uid();
  } catch {
    return null; // no --allow-sys=uid: reported as unknown rather than guessed
  }
}

async function guarded(
  name: string,
  severity: CheckSeverity,
  check: () => Promise<DoctorCheck>,
): Promise<DoctorCheck> {
  try {
    return await check();
  } catch (e) {
    return { name, ok: false, severity, detail: `could not check: ${errorText(e)}` };
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function checkRoot(uid: number | null): DoctorCheck {
  const name = "running as root";
  if (uid === 0) return { name, ok: true, severity: "error", detail: "uid 0" };
  return {
    name,
    ok: false,
    severity: "error",
    detail: uid === null ? "uid unknown (no permission to read it)" : `uid ${uid}`,
    fix: "Run the node service as root (a privileged DaemonSet): it attaches devices and mounts.",
  };
}

/**
 * The node agent's `auto` rule read from the facts gathered, without changing
 * anything: doctor only asks `modprobe -n`, so a module it finds is predicted
 * to load.
 */
function predictedNbd(nbd: NbdFacts): NbdAvailability {
  return {
    devNbd0: () => Promise.resolve(nbd.devNbd0),
    moduleLoaded: () => Promise.resolve(nbd.loaded),
    moduleFound: () => Promise.resolve(nbd.loadable === true),
    loadModule: () => Promise.resolve(true),
  };
}

async function nbdFacts(ctx: Context): Promise<NbdFacts> {
  const loaded = await pathExists(`${ctx.roots.sys}/module/nbd`);
  let loadable: boolean | undefined;
  let modprobeError: string | undefined;
  try {
    loadable = loaded ||
      await isKernelModuleAvailable("nbd", { runner: ctx.runner, timeoutMs: ctx.timeoutMs });
  } catch (e) {
    modprobeError = errorText(e);
  }
  const nbdsMaxText = await readTextIfExists(`${ctx.roots.sys}/module/nbd/parameters/nbds_max`);
  return {
    loaded,
    loadable,
    modprobeError,
    nbdsMax: nbdsMaxText === undefined ? undefined : Number(nbdsMaxText.trim()),
    sysfsDevices: await countEntries(`${ctx.roots.sys}/block`, /^nbd\d+$/),
    devNodes: await countEntries(ctx.roots.dev, /^nbd\d+$/),
    devNbd0: await pathExists(`${ctx.roots.dev}/nbd0`),
  };
}

function checkNbdModule(
  nbd: NbdFacts,
  requested: AttachMode | "auto",
  kernel: string,
): DoctorCheck {
  const name = "nbd kernel module";
  const severity: CheckSeverity = requested === "kernel"
    ? "error"
    : requested === "auto"
    ? "warning"
    : "info";
  if (nbd.readError !== undefined) {
    return { name, ok: false, severity, detail: `could not check: ${nbd.readError}` };
  }
  if (nbd.loaded) {
    const max = nbd.nbdsMax !== undefined ? `, nbds_max=${nbd.nbdsMax}` : "";
    return { name, ok: true, severity, detail: `loaded${max}` };
  }
  if (nbd.loadable) {
    return { name, ok: true, severity, detail: "not loaded; modprobe can load it" };
  }
  if (nbd.modprobeError !== undefined && requested === "auto" && !nbd.devNbd0) {
    // The agent's auto rule asks modprobe here too, and a failing modprobe stops its start.
    return {
      name,
      ok: false,
      severity: "error",
      detail: `not loaded, and modprobe could not be asked: ${nbd.modprobeError}; ` +
        `the node agent cannot choose an attach mode and will not start`,
      fix: `Make "modprobe -n nbd" work on this node, or choose --attach-mode=kernel or ` +
        `--attach-mode=userspace.`,
    };
  }
  const why = nbd.modprobeError !== undefined
    ? `not loaded, and modprobe could not be asked: ${nbd.modprobeError}`
    : `not loaded and not available to modprobe (kernel ${kernel})`;
  const loadIt = `install the kernel's modules (e.g. linux-image-amd64 on Debian) and run ` +
    `"modprobe nbd nbds_max=${SUGGESTED_NBDS_MAX}"`;
  const fix: string | undefined = requested === "kernel"
    ? `To attach volumes with --attach-mode=kernel, ${loadIt}; or use --attach-mode=userspace ` +
      `(nbdfuse + loop + FUSE, slower).`
    : requested === "auto"
    ? `Volumes will attach through the userspace fallback (nbdfuse + loop + FUSE, slower; ` +
      `see its checks below). For the kernel path, ${loadIt}.`
    : undefined;
  const consequence = requested === "auto"
    ? "; auto mode falls back to userspace"
    : requested === "userspace"
    ? "; not needed with --attach-mode=userspace"
    : "";
  return { name, ok: false, severity, detail: `${why}${consequence}`, fix };
}

function checkNbdDevices(nbd: NbdFacts, attachMode: AttachMode): DoctorCheck {
  const name = "nbd devices";
  const counts = `${nbd.sysfsDevices} in /sys/block, ${nbd.devNodes} device nodes in /dev`;
  if (attachMode === "userspace") {
    return {
      name,
      ok: nbd.sysfsDevices > 0,
      severity: "info",
      detail: `${counts}; not used in userspace mode (loop devices are)`,
    };
  }
  if (!nbd.loaded) {
    return {
      name,
      ok: nbd.loadable === true,
      severity: "error",
      detail: nbd.loadable ? `${counts}; created when the module is loaded` : counts,
      fix: nbd.loadable ? undefined : `Load the nbd module (see above).`,
    };
  }
  if (nbd.sysfsDevices === 0) {
    return {
      name,
      ok: false,
      severity: "error",
      detail: `${counts}; no volume can be attached`,
      fix: `Reload the module with devices: "modprobe -r nbd && modprobe nbd ` +
        `nbds_max=${SUGGESTED_NBDS_MAX}".`,
    };
  }
  if (nbd.devNodes < nbd.sysfsDevices) {
    return {
      name,
      ok: false,
      severity: "warning",
      detail: `${counts}; devices without a node in /dev cannot be attached`,
      fix:
        `Mount the host's /dev into the node container (hostPath /dev) or run "udevadm trigger".`,
    };
  }
  return {
    name,
    ok: true,
    severity: "error",
    detail: `${counts}; max volumes on this node: ${nbd.sysfsDevices}`,
  };
}

function userspaceSeverity(attachMode: AttachMode): CheckSeverity {
  return attachMode === "userspace" ? "error" : "info";
}

function userspaceNote(attachMode: AttachMode): string {
  return attachMode === "userspace" ? "needed by userspace attach" : "only for userspace attach";
}

async function checkFuseDevice(ctx: Context, attachMode: AttachMode): Promise<DoctorCheck> {
  const present = await isCharDevice(`${ctx.roots.dev}/fuse`);
  return {
    name: "/dev/fuse",
    ok: present,
    severity: userspaceSeverity(attachMode),
    detail: `${present ? "present" : "missing"} (${userspaceNote(attachMode)}: nbdfuse)`,
    fix: present
      ? undefined
      : `Load FUSE ("modprobe fuse") and expose /dev/fuse to the node container.`,
  };
}

async function checkLoopControl(ctx: Context, attachMode: AttachMode): Promise<DoctorCheck> {
  const present = await isCharDevice(`${ctx.roots.dev}/loop-control`);
  return {
    name: "/dev/loop-control",
    ok: present,
    severity: userspaceSeverity(attachMode),
    detail: `${present ? "present" : "missing"} (${userspaceNote(attachMode)}: losetup)`,
    fix: present
      ? undefined
      : `Load the loop module ("modprobe loop") and expose /dev to the node container.`,
  };
}

function toolSeverity(tool: HostTool, attachMode: AttachMode): CheckSeverity {
  switch (tool.neededFor) {
    case "always":
      return "error";
    case "kernel":
    case "userspace":
      return tool.neededFor === attachMode ? "error" : "info";
    case "xfs":
    case "btrfs":
    case "modules":
      return "warning";
  }
}

function toolPurpose(tool: HostTool, attachMode: AttachMode): string {
  switch (tool.neededFor) {
    case "always":
      return "";
    case "kernel":
    case "userspace":
      return tool.neededFor === attachMode ? "" : ` (only for ${tool.neededFor} attach)`;
    case "xfs":
    case "btrfs":
      return ` (only for ${tool.neededFor} volumes)`;
    case "modules":
      return " (detects and loads kernel modules)";
  }
}

async function checkTool(
  ctx: Context,
  tool: HostTool,
  attachMode: AttachMode,
): Promise<DoctorCheck> {
  const name = `tool ${tool.tool}`;
  const severity = toolSeverity(tool, attachMode);
  const purpose = toolPurpose(tool, attachMode);
  try {
    const version = await toolVersion(tool.tool, { runner: ctx.runner, timeoutMs: ctx.timeoutMs });
    return { name, ok: true, severity, detail: `${version}${purpose}` };
  } catch (e) {
    const missing = e instanceof ToolError && e.exitCode === null && !e.timedOut;
    return {
      name,
      ok: false,
      severity,
      detail: missing
        ? `not found${purpose}: ${errorText(e)}`
        : `present but "${tool.tool} ${tool.versionArgs.join(" ")}" failed${purpose}: ${
          errorText(e)
        }`,
      fix: missing
        ? `apt-get install ${tool.debianPackage} (or add it to the node image).`
        : `Reinstall ${tool.debianPackage}.`,
    };
  }
}

async function checkKernelFilesystem(
  ctx: Context,
  fs: "ext4" | "xfs" | "btrfs",
): Promise<DoctorCheck> {
  const name = `filesystem ${fs}`;
  const severity: CheckSeverity = fs === "ext4" ? "error" : "warning";
  const note = fs === "ext4" ? " (the default fsType)" : ` (only for ${fs} volumes)`;
  const listed = (await Deno.readTextFile(`${ctx.roots.proc}/filesystems`))
    .split("\n")
    .some((line) => line.split(/\s+/).at(-1) === fs);
  if (listed) return { name, ok: true, severity, detail: `in /proc/filesystems${note}` };
  const loadable = await isKernelModuleAvailable(fs, {
    runner: ctx.runner,
    timeoutMs: ctx.timeoutMs,
  });
  if (loadable) return { name, ok: true, severity, detail: `loadable module${note}` };
  return {
    name,
    ok: false,
    severity,
    detail: `not in /proc/filesystems and no module to load${note}`,
    fix: `Use a kernel with ${fs} support, or avoid fsType ${fs} in StorageClasses.`,
  };
}

function checkSocketPaths(stateDir: string): DoctorCheck {
  const name = "socket path length";
  const paths = volumePaths(stateDir, LONGEST_VOLUME_ID);
  const longest = [paths.ninepSocket, paths.nbdSocket]
    .reduce((a, b) => byteLength(a) >= byteLength(b) ? a : b);
  try {
    checkSocketPath(longest);
    return {
      name,
      ok: true,
      severity: "error",
      detail: `${byteLength(longest)} bytes for any volume ID (limit ${MAX_SOCKET_PATH_BYTES})`,
    };
  } catch (e) {
    return {
      name,
      ok: false,
      severity: "error",
      detail: errorText(e),
      fix: `Use a --state-dir at most ${
        MAX_SOCKET_PATH_BYTES - (byteLength(longest) - byteLength(stateDir))
      } bytes long.`,
    };
  }
}

async function checkStateDir(ctx: Context): Promise<DoctorCheck> {
  const name = "state dir";
  const dir = ctx.stateDir;
  if (!isAbsolute(dir)) {
    return {
      name,
      ok: false,
      severity: "error",
      detail: `"${dir}" is not an absolute path`,
      fix: `Pass an absolute --state-dir (default /var/lib/zerofs-csi).`,
    };
  }
  const info = await statIfExists(dir);
  if (info) return describeExistingStateDir(dir, info);
  return await describeCreatableStateDir(ctx, dir);
}

function describeExistingStateDir(dir: string, info: Deno.FileInfo): DoctorCheck {
  const name = "state dir";
  if (!info.isDirectory) {
    return {
      name,
      ok: false,
      severity: "error",
      detail: `${dir} exists but is not a directory`,
      fix: `Remove it or choose another --state-dir.`,
    };
  }
  const mode = (info.mode ?? 0) & 0o777;
  const problems: string[] = [];
  const fixes: string[] = [];
  if (mode !== 0o700) {
    problems.push(`mode ${octal(mode)} (want 0700: it holds config.toml and the volume sockets)`);
    fixes.push(`chmod 700 ${dir}`);
  }
  if (info.uid !== 0) {
    problems.push(`owned by uid ${info.uid} (want root)`);
    fixes.push(`chown root:root ${dir}`);
  }
  if (problems.length === 0) {
    return { name, ok: true, severity: "warning", detail: `${dir} exists, mode 0700, owner root` };
  }
  return {
    name,
    ok: false,
    severity: "warning",
    detail: `${dir}: ${problems.join("; ")}`,
    fix: fixes.join(" && "),
  };
}

/** Answers "can it be created?" without creating anything. */
async function describeCreatableStateDir(ctx: Context, dir: string): Promise<DoctorCheck> {
  const name = "state dir";
  let ancestor = dirname(dir);
  let info = await statIfExists(ancestor);
  while (!info && ancestor !== "/") {
    ancestor = dirname(ancestor);
    info = await statIfExists(ancestor);
  }
  const cannot = (why: string, fix: string): DoctorCheck => ({
    name,
    ok: false,
    severity: "error",
    detail: `${dir} does not exist and cannot be created: ${why}`,
    fix,
  });
  if (!info?.isDirectory) {
    return cannot(`${ancestor} is not a directory`, `Choose another --state-dir.`);
  }
  const mount = mountHolding(
    await readMountInfo({ mountInfoPath: `${ctx.roots.proc}/self/mountinfo` }),
    ancestor,
  );
  if (mount?.options.includes("ro")) {
    return cannot(
      `${mount.mountPoint} is mounted read-only`,
      `Mount a writable hostPath there, or choose another --state-dir.`,
    );
  }
  if (ctx.uid !== 0 && !((info.mode ?? 0) & (info.uid === ctx.uid ? 0o200 : 0o002))) {
    return cannot(`${ancestor} is not writable by uid ${ctx.uid}`, `Run as root.`);
  }
  return {
    name,
    ok: true,
    severity: "error",
    detail: `${dir} does not exist yet; it will be created (mode 0700) under ${ancestor}`,
  };
}

function mountHolding<T extends { mountPoint: string }>(mounts: T[], path: string): T | undefined {
  let best: T | undefined;
  for (const m of mounts) {
    const prefix = m.mountPoint === "/" ? "/" : `${m.mountPoint}/`;
    if (path === m.mountPoint || path.startsWith(prefix)) {
      if (!best || m.mountPoint.length >= best.mountPoint.length) best = m;
    }
  }
  return best;
}

async function kernelRelease(ctx: Context): Promise<string> {
  return (await readTextIfExists(`${ctx.roots.proc}/sys/kernel/osrelease`))?.trim() ?? "unknown";
}

function byteLength(s: string): number {
  return new TextEncoder().encode(s).length;
}

function octal(mode: number): string {
  return "0" + mode.toString(8).padStart(3, "0");
}

async function statIfExists(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

async function isCharDevice(path: string): Promise<boolean> {
  return (await statIfExists(path))?.isCharDevice === true;
}

async function readTextIfExists(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

async function countEntries(dir: string, pattern: RegExp): Promise<number> {
  let n = 0;
  try {
    for await (const entry of Deno.readDir(dir)) if (pattern.test(entry.name)) n++;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return 0;
    throw e;
  }
  return n;
}

const STATUS_WIDTH = 8;
const STATUS_LABEL: Record<CheckSeverity, string> = {
  error: "FAIL",
  warning: "WARN",
  info: "info",
};

/** The status column of a check: `ok`, or what its failure means. */
export function checkStatus(check: DoctorCheck): string {
  return check.ok ? "ok" : STATUS_LABEL[check.severity];
}

/**
 * A plain-text table: one row per check (status, name, detail), the fix
 * indented under a failed row, and a summary line.
 */
export function formatDoctorReport(report: DoctorReport): string {
  const nameWidth = Math.max(5, ...report.checks.map((c) => c.name.length));
  const row = (status: string, name: string, detail: string) =>
    `${status.padEnd(STATUS_WIDTH)}${name.padEnd(nameWidth + 2)}${detail}`;
  const mode = report.requestedAttachMode === report.attachMode
    ? report.attachMode
    : `${report.requestedAttachMode} → ${report.attachMode}`;
  const lines = [`zerofs-csi doctor (attach mode: ${mode})`, "", row("STATUS", "CHECK", "DETAIL")];
  for (const check of report.checks) {
    lines.push(row(checkStatus(check), check.name, check.detail));
    if (!check.ok && check.fix) {
      lines.push(`${" ".repeat(STATUS_WIDTH + nameWidth + 2)}fix: ${check.fix}`);
    }
  }
  const count = (s: CheckSeverity) => report.checks.filter((c) => !c.ok && c.severity === s).length;
  lines.push(
    "",
    `${report.ok ? "OK" : "NOT READY"}: ${count("error")} error(s), ${
      count("warning")
    } warning(s), ` +
      `${count("info")} note(s).`,
  );
  return lines.join("\n") + "\n";
}
