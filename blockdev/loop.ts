/**
 * Loop devices (`losetup`): turn the nbdfuse file into a block device.
 *
 * @module
 */

import type { ToolOptions } from "./probe.ts";
import { runTool } from "./run.ts";

/**
 * Bind `file` to a free loop device in one step and return the device.
 * `losetup --find --show FILE` picks and binds atomically (the kernel's
 * LOOP_CTL_GET_FREE + LOOP_CONFIGURE, retried on a race), so another agent
 * or tool cannot take the device between the choice and the bind; the
 * backing file identifies the device for recovery. Direct I/O keeps the page
 * cache from holding a second copy of every block.
 *
 * `inMountNamespaceOf`: open `file` in that process's mount namespace (the
 * userspace attacher's nbdfuse). The loop device keeps the mount it was opened
 * through, and sysfs names its backing file by that mount; a mount in the
 * agent's own namespace would vanish with an agent container and the name
 * degrade to `/nbd`. losetup canonicalizes its argument, so a
 * `/proc/<pid>/root/…` path would still open the agent's copy: losetup runs in
 * that namespace instead.
 */
export async function bindFreeLoopDevice(
  file: string,
  opts: ToolOptions & { readOnly?: boolean; inMountNamespaceOf?: number } = {},
): Promise<string> {
  const args = [
    "--find",
    "--show",
    "--direct-io=on",
    ...(opts.readOnly ? ["--read-only"] : []),
    file,
  ];
  const runner = opts.runner ?? runTool;
  const { stdout } = opts.inMountNamespaceOf === undefined
    ? await runner("losetup", args, { timeoutMs: opts.timeoutMs })
    : await runner(
      "nsenter",
      [`--mount=/proc/${opts.inMountNamespaceOf}/ns/mnt`, "--", "losetup", ...args],
      { timeoutMs: opts.timeoutMs },
    );
  const device = stdout.trim();
  if (!/^\/dev\/loop\d+$/.test(device)) {
    throw new Error(`Cannot bind a loop device: losetup --find --show printed "${device}"`);
  }
  return device;
}

/**
 * `losetup -d`. The kernel answers success even for a device still in use
 * (it only sets autoclear), so callers verify with {@linkcode loopBackingFile}.
 */
export async function detachLoopDevice(device: string, opts: ToolOptions = {}): Promise<void> {
  await (opts.runner ?? runTool)("losetup", ["-d", device], { timeoutMs: opts.timeoutMs });
}

/** A loop device and the file behind it, from `losetup --json --list`. */
export interface LoopDevice {
  device: string;
  backingFile: string;
}

/** Every configured loop device on the node. */
export async function listLoopDevices(opts: ToolOptions = {}): Promise<LoopDevice[]> {
  const { stdout } = await (opts.runner ?? runTool)("losetup", ["--json", "--list"], {
    timeoutMs: opts.timeoutMs,
  });
  // losetup prints nothing at all when no device is configured.
  if (stdout.trim() === "") return [];
  const parsed = JSON.parse(stdout) as { loopdevices?: { name: string; "back-file": string }[] };
  return (parsed.loopdevices ?? []).map((d) => ({ device: d.name, backingFile: d["back-file"] }));
}

/**
 * The file behind a loop device according to sysfs, or undefined when the
 * device is free (the `loop/` directory exists only while it is bound).
 */
export async function loopBackingFile(
  device: string,
  opts: { sysRoot?: string } = {},
): Promise<string | undefined> {
  const name = device.replace(/^\/dev\//, "");
  try {
    const text = await Deno.readTextFile(
      `${opts.sysRoot ?? "/sys"}/block/${name}/loop/backing_file`,
    );
    return text.replace(/\n$/, "");
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}
