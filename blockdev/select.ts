/**
 * Choosing the attach backend for this node.
 *
 * @module
 */

import { KernelAttacher, type KernelAttacherOptions } from "./kernel.ts";
import type { NodeLock } from "./lock.ts";
import { pathExists } from "./path_exists.ts";
import type { ToolOptions } from "./probe.ts";
import { type Runner, runTool } from "./run.ts";
import type { Attacher, AttachMode } from "./types.ts";
import { UserspaceAttacher, type UserspaceAttacherOptions } from "./userspace.ts";

/** Options for {@linkcode selectAttacher}. */
export interface SelectAttacherOptions {
  mode: "auto" | "kernel" | "userspace";
  lock: NodeLock;
  runner?: Runner;
  /** Default `/dev`. */
  devRoot?: string;
  /** Default `/sys`. */
  sysRoot?: string;
  kernel?: Omit<KernelAttacherOptions, "lock" | "runner" | "sysRoot" | "devRoot">;
  userspace?: Omit<UserspaceAttacherOptions, "lock" | "runner" | "sysRoot">;
}

/** modprobe: 0 = the module (or a builtin) can be loaded; 1 = not found. */
const MODPROBE_NOT_FOUND = 1;

/** `modprobe [-n] -q MODULE`: true when the module is loaded (or, dry run, could be). */
async function modprobe(
  module: string,
  opts: ToolOptions & { dryRun: boolean },
): Promise<boolean> {
  const args = [...(opts.dryRun ? ["-n"] : []), "-q", module];
  const { exitCode } = await (opts.runner ?? runTool)("modprobe", args, {
    okExitCodes: [MODPROBE_NOT_FOUND],
    timeoutMs: opts.timeoutMs,
  });
  return exitCode === 0;
}

/** True when `modprobe -n` (dry run) finds the module. */
export function isKernelModuleAvailable(module: string, opts: ToolOptions = {}): Promise<boolean> {
  return modprobe(module, { ...opts, dryRun: true });
}

/** Load a module with its defaults; false when modprobe cannot. */
function loadKernelModule(module: string, opts: ToolOptions = {}): Promise<boolean> {
  return modprobe(module, { ...opts, dryRun: false });
}

/**
 * What the `auto` rule asks about the node, in this order and only as far as
 * it needs to (a node with `/dev/nbd0` never runs modprobe).
 */
export interface NbdAvailability {
  /** `/dev/nbd0` exists. */
  devNbd0(): Promise<boolean>;
  /** `/sys/module/nbd` exists: the module is loaded or built in. */
  moduleLoaded(): Promise<boolean>;
  /** `modprobe -n` finds the module. */
  moduleFound(): Promise<boolean>;
  /** Load the module (with its default nbds_max); true when it loaded. */
  loadModule(): Promise<boolean>;
}

/**
 * The `auto` rule, shared by the node agent and `doctor`: kernel when
 * `/dev/nbd0` exists, the module is loaded, or modprobe finds and loads it;
 * otherwise userspace.
 *
 * @example
 * ```ts
 * const mode = await autoAttachMode({
 *   devNbd0: () => Promise.resolve(false),
 *   moduleLoaded: () => Promise.resolve(false),
 *   moduleFound: () => Promise.resolve(false),
 *   loadModule: () => Promise.resolve(false),
 * }); // "userspace"
 * ```
 */
export async function autoAttachMode(nbd: NbdAvailability): Promise<AttachMode> {
  if (await nbd.devNbd0() || await nbd.moduleLoaded()) return "kernel";
  if (!(await nbd.moduleFound())) return "userspace";
  return await nbd.loadModule() ? "kernel" : "userspace";
}

/**
 * The attacher for `mode`; `auto` is decided by {@linkcode autoAttachMode}
 * against this node (the DaemonSet loads nbd with a chosen nbds_max first).
 */
export async function selectAttacher(opts: SelectAttacherOptions): Promise<Attacher> {
  const mode = opts.mode === "auto" ? await autoAttachMode(nodeNbd(opts)) : opts.mode;
  if (mode === "kernel") {
    return new KernelAttacher({
      ...opts.kernel,
      lock: opts.lock,
      runner: opts.runner,
      sysRoot: opts.sysRoot,
      devRoot: opts.devRoot,
    });
  }
  return new UserspaceAttacher({
    ...opts.userspace,
    lock: opts.lock,
    runner: opts.runner,
    sysRoot: opts.sysRoot,
  });
}

function nodeNbd(opts: SelectAttacherOptions): NbdAvailability {
  return {
    devNbd0: () => pathExists(`${opts.devRoot ?? "/dev"}/nbd0`),
    moduleLoaded: () => pathExists(`${opts.sysRoot ?? "/sys"}/module/nbd`),
    moduleFound: () => isKernelModuleAvailable("nbd", { runner: opts.runner }),
    loadModule: () => loadKernelModule("nbd", { runner: opts.runner }),
  };
}
