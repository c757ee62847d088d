/**
 * Runs a shell script as root inside a real Linux guest (Debian's kernel under
 * qemu TCG) whose root filesystem is this host's root, shared over virtio-9p.
 * That is where the kernel NBD path is tested: the host kernel has no nbd.
 *
 * The guest sees every host path unchanged (the repo, the Deno binary, the
 * tools), except `/run`, `/tmp` (guest tmpfs: sockets cannot live on 9p),
 * `/proc`, `/sys`, `/dev` and its DENO_DIR.
 *
 * @example
 * ```ts
 * const { exitCode, output } = await runInVm({
 *   script: "modprobe nbd nbds_max=2 && ls /dev/nbd1",
 *   timeoutMs: 120_000,
 * });
 * ```
 *
 * @module
 */

import { findGuestKernel, findHostDenoDir, requireHostTool } from "./host_tools.ts";
import {
  DENO_DIR_PARAM,
  ensureInitramfs,
  HOST_ROOT_TAG,
  REPO_DIR_PARAM,
  RUN_DIR_PARAM,
  STAGE2_FILE,
} from "./initramfs.ts";
import { renderStage2, RUN_FILES } from "./stage2.ts";
import { pathExists } from "../../blockdev/mod.ts";

/** Where initramfs images and run directories live; /var/tmp is not overmounted in the guest. */
export const DEFAULT_VM_WORK_DIR = "/var/tmp/zerofs-csi-vm";
/** The repository root, as both host and guest see it. */
export const REPO_DIR = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
/** How much of the console log an error carries. */
const CONSOLE_TAIL_CHARS = 3000;
const POLL_INTERVAL_MS = 100;

/** Options for {@linkcode runInVm}. */
export interface RunInVmOptions {
  /** Shell script run by bash as root inside the guest, cwd {@linkcode RunInVmOptions.cwd}. */
  script: string;
  /** Kill the VM after this long (boot included) and throw with the console tail. */
  timeoutMs: number;
  /** Guest memory; default 2048. */
  memoryMiB?: number;
  /** Guest CPUs; default 2. */
  cpus?: number;
  /** Extra kernel command-line parameters. */
  kernelCmdline?: string;
  /** Adds `nbd.nbds_max=<n>` so a plain `modprobe nbd` creates n devices. */
  nbdsMax?: number;
  /** The script's working directory; default the repository root. */
  cwd?: string;
  /** Cache and scratch directory on the host; must be visible to the guest. */
  workDir?: string;
}

/** What the guest's script did. */
export interface VmResult {
  /** The script's exit code. */
  exitCode: number;
  /** The script's stdout and stderr, interleaved. */
  output: string;
  /** From starting qemu until the script began (kernel, init, stage 2, DENO_DIR set-up). */
  bootMs: number;
  /** From starting qemu until qemu exited. */
  totalMs: number;
}

/** The VM did not produce a result: timeout, qemu failure, or a guest that died early. */
export class VmError extends Error {
  override readonly name = "VmError";
  constructor(message: string, readonly consoleTail: string, readonly outputTail: string) {
    super(
      `${message}\n--- guest console (tail) ---\n${consoleTail}` +
        (outputTail ? `\n--- script output (tail) ---\n${outputTail}` : ""),
    );
  }
}

/**
 * Boot a guest, run `options.script` in it, power it off, return its result.
 *
 * @throws VmError when the VM exceeds `timeoutMs` (qemu is killed) or ends without an exit code.
 */
export async function runInVm(options: RunInVmOptions): Promise<VmResult> {
  const workDir = options.workDir ?? DEFAULT_VM_WORK_DIR;
  const [qemu, kernel, hostDenoDir] = await Promise.all([
    requireHostTool("qemu-system-x86_64"),
    findGuestKernel(),
    findHostDenoDir(),
  ]);
  for (const [what, path] of [["work directory", workDir], ["host DENO_DIR", hostDenoDir]]) {
    // Both travel on the kernel command line, which splits on whitespace.
    if (/\s/.test(path)) {
      throw new Error(`Cannot boot the VM: the ${what} "${path}" contains whitespace`);
    }
  }
  const initramfs = await ensureInitramfs(kernel, { cacheDir: workDir });
  await Deno.mkdir(workDir, { recursive: true });
  const runDir = await Deno.makeTempDir({ dir: workDir, prefix: "run-" });
  try {
    await Deno.writeTextFile(`${runDir}/${RUN_FILES.script}`, options.script);
    await Deno.writeTextFile(
      `${runDir}/${STAGE2_FILE}`,
      renderStage2({ runDir, cwd: options.cwd ?? REPO_DIR }),
    );
    const cmdline = [
      "console=ttyS0",
      "panic=-1",
      "loglevel=4",
      `${RUN_DIR_PARAM}=${runDir}`,
      `${DENO_DIR_PARAM}=${hostDenoDir}`,
      `${REPO_DIR_PARAM}=${options.cwd ?? REPO_DIR}`,
      options.nbdsMax === undefined ? "" : `nbd.nbds_max=${options.nbdsMax}`,
      options.kernelCmdline ?? "",
    ].filter(Boolean).join(" ");
    const consolePath = `${runDir}/console.log`;
    const args = [
      ...["-M", "pc", "-cpu", "max", "-accel", "tcg,thread=multi"],
      ...["-m", String(options.memoryMiB ?? 2048), "-smp", String(options.cpus ?? 2)],
      ...["-nographic", "-nodefaults", "-no-user-config", "-no-reboot", "-monitor", "none"],
      ...["-serial", `file:${consolePath}`],
      ...["-kernel", kernel.imagePath, "-initrd", initramfs.path, "-append", cmdline],
      "-fsdev",
      "local,id=hostroot,path=/,security_model=passthrough,multidevs=remap",
      "-device",
      `virtio-9p-pci,fsdev=hostroot,mount_tag=${HOST_ROOT_TAG}`,
    ];
    return await bootAndWait(qemu, args, { runDir, consolePath, timeoutMs: options.timeoutMs });
  } finally {
    await Deno.remove(runDir, { recursive: true });
  }
}

async function bootAndWait(
  qemu: string,
  args: string[],
  run: { runDir: string; consolePath: string; timeoutMs: number },
): Promise<VmResult> {
  const started = performance.now();
  const child = new Deno.Command(qemu, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const qemuOutput = Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]).then(([out, err]) => (out + err).trim());
  let exited = false;
  const status = child.status.finally(() => exited = true);

  let bootMs: number | undefined;
  const deadline = started + run.timeoutMs;
  while (!exited && performance.now() < deadline) {
    await waitAtMost(status, POLL_INTERVAL_MS);
    if (bootMs === undefined && await pathExists(`${run.runDir}/${RUN_FILES.started}`)) {
      bootMs = performance.now() - started;
    }
  }
  const timedOut = !exited;
  if (timedOut) child.kill("SIGKILL");
  const qemuStatus = await status;
  const totalMs = performance.now() - started;
  const qemuText = await qemuOutput;

  const consoleTail = tail(await readOr(run.consolePath, "(no console output)"));
  const output = await readOr(`${run.runDir}/${RUN_FILES.output}`, "");
  if (timedOut) {
    throw new VmError(
      `VM did not finish within ${run.timeoutMs} ms (${
        bootMs === undefined ? "the script never started" : "the script was running"
      }); qemu was killed`,
      consoleTail,
      tail(output),
    );
  }
  const exitText = await readOr(`${run.runDir}/${RUN_FILES.exitCode}`, "");
  if (!/^\d+\s*$/.test(exitText)) {
    throw new VmError(
      `VM ended without the script's exit code (qemu exited with code ${qemuStatus.code}` +
        `${qemuText ? `: ${qemuText}` : ""})`,
      consoleTail,
      tail(output),
    );
  }
  return {
    exitCode: Number.parseInt(exitText, 10),
    output,
    bootMs: bootMs ?? totalMs,
    totalMs,
  };
}

/** Wait for `promise` or `ms`, whichever comes first, leaving no timer behind. */
async function waitAtMost(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([promise, new Promise((resolve) => timer = setTimeout(resolve, ms))]);
  } finally {
    clearTimeout(timer);
  }
}

async function readOr(path: string, fallback: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return fallback;
    throw error;
  }
}

function tail(text: string): string {
  return text.length > CONSOLE_TAIL_CHARS ? "…" + text.slice(-CONSOLE_TAIL_CHARS) : text;
}
