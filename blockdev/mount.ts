/**
 * Mounting and unmounting: filesystems on attached devices, and bind mounts
 * from the staging path to pod targets.
 *
 * @module
 */

import { findMountByTarget, type MountInfoOptions } from "./mountinfo.ts";
import type { ToolOptions } from "./probe.ts";
import { runTool } from "./run.ts";
import type { FsType } from "./types.ts";

/**
 * Options a read-only mount needs so the kernel does not write to the device:
 * replaying a journal is a write, and a reader's ZeroFS refuses writes.
 */
const READ_ONLY_OPTIONS: Record<FsType, string[]> = {
  ext4: ["ro", "noload"],
  xfs: ["ro", "norecovery"],
  btrfs: ["ro", "rescue=nologreplay"],
};

/**
 * Per-mount options every tenant filesystem gets, whatever its mount flags:
 * no device nodes and no setuid programs from a volume's contents. They go
 * after the flags, so a flag such as `defaults` cannot undo them.
 */
export const TENANT_MOUNT_OPTIONS: readonly string[] = ["nodev", "nosuid"];

/** Options for {@linkcode mountFilesystem}. */
export interface MountFilesystemOptions extends ToolOptions {
  fsType: FsType;
  /** Mount flags from the volume capability (already validated). */
  flags?: readonly string[];
  readOnly?: boolean;
}

/**
 * The argv of `mount` for a filesystem; exported for the unit tests. The
 * capability's flags come first and the driver's options last (mount(8)
 * applies options in order), so neither `dev`/`suid` nor `rw` in a flag can
 * undo {@linkcode TENANT_MOUNT_OPTIONS} or a read-only stage.
 */
export function mountArgs(device: string, target: string, opts: MountFilesystemOptions): string[] {
  const options = [
    ...(opts.flags ?? []),
    ...TENANT_MOUNT_OPTIONS,
    ...(opts.readOnly ? READ_ONLY_OPTIONS[opts.fsType] : []),
  ];
  return ["-t", opts.fsType, "-o", options.join(","), device, target];
}

/** Mount the filesystem on `device` at `target` (which must exist). */
export async function mountFilesystem(
  device: string,
  target: string,
  opts: MountFilesystemOptions,
): Promise<void> {
  await (opts.runner ?? runTool)("mount", mountArgs(device, target, opts), {
    timeoutMs: opts.timeoutMs,
  });
}

/** Options for {@linkcode bindMount}. */
export interface BindMountOptions extends ToolOptions {
  readOnly?: boolean;
  /**
   * Per-mount options for the bind, e.g. {@linkcode TENANT_MOUNT_OPTIONS}
   * (not for a device node: `nodev` would make it unusable).
   */
  mountOptions?: readonly string[];
}

/**
 * Bind-mount `source` (a directory or a device node) onto `target`. Per-mount
 * options take a second step: the kernel ignores `ro`, `nodev`… on the first
 * `mount --bind`, only a bind remount applies them, and that remount sets
 * every per-mount flag at once, so it always names them all. If the remount
 * fails, the bind is undone so nothing writable or unrestricted is left.
 */
export async function bindMount(
  source: string,
  target: string,
  opts: BindMountOptions = {},
): Promise<void> {
  const runner = opts.runner ?? runTool;
  await runner("mount", ["--bind", source, target], { timeoutMs: opts.timeoutMs });
  const options = [...(opts.mountOptions ?? []), ...(opts.readOnly ? ["ro"] : [])];
  if (options.length === 0) return;
  try {
    await runner("mount", ["-o", ["remount", "bind", ...options].join(","), target], {
      timeoutMs: opts.timeoutMs,
    });
  } catch (e) {
    await runner("umount", [target], { timeoutMs: opts.timeoutMs });
    throw e;
  }
}

/**
 * Unmount `target`. Idempotent: when mountinfo shows nothing mounted there it
 * returns at once. Verifies afterwards that the mount is gone.
 */
export async function unmount(
  target: string,
  opts: ToolOptions & MountInfoOptions = {},
): Promise<void> {
  if (!(await findMountByTarget(target, opts))) return;
  await (opts.runner ?? runTool)("umount", [target], { timeoutMs: opts.timeoutMs });
  const left = await findMountByTarget(target, opts);
  if (left) {
    throw new Error(
      `Cannot unmount ${target}: after umount a ${left.fsType} mount of ${left.source} is still ` +
        `there (stacked mounts?). Unmount it by hand and retry.`,
    );
  }
}
