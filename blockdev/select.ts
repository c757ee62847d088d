/**
 * Choosing the attach backend for this node.
 *
 * @module
 */

import { KernelAttacher, type KernelAttacherOptions } from "./kernel.ts";
import type { NodeLock } from "./lock.ts";
import type { ToolOptions } from "./probe.ts";
import { type Runner, runTool } from "./run.ts";
import type { Attacher } from "./types.ts";
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
export function loadKernelModule(module: string, opts: ToolOptions = {}): Promise<boolean> {
  return modprobe(module, { ...opts, dryRun: false });
}

/**
 * The attacher for `mode`. `auto` picks kernel when `/dev/nbd0` exists, the
 * module is loaded (`/sys/module/nbd`), or `modprobe` finds and loads it
 * (with its default nbds_max; the DaemonSet loads it with a chosen one);
 * otherwise userspace.
 */
export async function selectAttacher(opts: SelectAttacherOptions): Promise<Attacher> {
  const mode = opts.mode === "auto" ? await detectMode(opts) : opts.mode;
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

async function detectMode(opts: SelectAttacherOptions): Promise<"kernel" | "userspace"> {
  if (await exists(`${opts.devRoot ?? "/dev"}/nbd0`)) return "kernel";
  if (await exists(`${opts.sysRoot ?? "/sys"}/module/nbd`)) return "kernel";
  if (!(await isKernelModuleAvailable("nbd", { runner: opts.runner }))) return "userspace";
  return await loadKernelModule("nbd", { runner: opts.runner }) ? "kernel" : "userspace";
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}
