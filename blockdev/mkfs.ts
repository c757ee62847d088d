/**
 * Creating and growing filesystems, with options that avoid whole-device
 * passes (discard, inode table zeroing) — each such pass is a full sweep of
 * object storage.
 *
 * @module
 */

import type { FsType } from "./types.ts";
import type { ToolOptions } from "./probe.ts";
import { runTool } from "./run.ts";

/** mkfs on a 1 TiB device can take a while even with lazy init. */
const MKFS_TIMEOUT_MS = 10 * 60_000;

/** The argv of the mkfs tool for `fsType`; exported for the unit tests. */
export function mkfsCommand(
  device: string,
  fsType: FsType,
  opts: { label?: string } = {},
): { tool: string; args: string[] } {
  const label = opts.label ? ["-L", opts.label] : [];
  switch (fsType) {
    case "ext4":
      return {
        tool: "mkfs.ext4",
        args: [
          "-F",
          "-E",
          "nodiscard,lazy_itable_init=1,lazy_journal_init=1",
          "-m",
          "0",
          ...label,
          device,
        ],
      };
    case "xfs":
      return { tool: "mkfs.xfs", args: ["-K", "-f", ...label, device] };
    case "btrfs":
      return { tool: "mkfs.btrfs", args: ["-K", "-f", ...label, device] };
  }
}

/**
 * Create a filesystem on `device`. Destroys what is there: callers decide
 * with {@linkcode probeSignature} and the volume record first.
 */
export async function makeFilesystem(
  device: string,
  fsType: FsType,
  opts: ToolOptions & { label?: string } = {},
): Promise<void> {
  const { tool, args } = mkfsCommand(device, fsType, opts);
  await (opts.runner ?? runTool)(tool, args, { timeoutMs: opts.timeoutMs ?? MKFS_TIMEOUT_MS });
}

/** Where the filesystem to grow is: ext4 grows by device, xfs and btrfs by mount point. */
export interface GrowTarget {
  device: string;
  mountPoint: string;
}

/** The argv that grows `fsType` to fill its device; exported for the unit tests. */
export function growCommand(fsType: FsType, target: GrowTarget): { tool: string; args: string[] } {
  switch (fsType) {
    case "ext4":
      return { tool: "resize2fs", args: [target.device] };
    case "xfs":
      return { tool: "xfs_growfs", args: ["-d", target.mountPoint] };
    case "btrfs":
      return { tool: "btrfs", args: ["filesystem", "resize", "max", target.mountPoint] };
  }
}

/** Grow a mounted filesystem to the size of its (already larger) device. */
export async function growFilesystem(
  fsType: FsType,
  target: GrowTarget & ToolOptions,
): Promise<void> {
  const { tool, args } = growCommand(fsType, target);
  await (target.runner ?? runTool)(tool, args, { timeoutMs: target.timeoutMs ?? MKFS_TIMEOUT_MS });
}

/**
 * Check an unmounted ext4 filesystem (`e2fsck -f -p`), as offline
 * `resize2fs` requires. Exit 1 means "errors corrected"; 4 and above fail.
 */
export async function checkExt4(device: string, opts: ToolOptions = {}): Promise<void> {
  await (opts.runner ?? runTool)("e2fsck", ["-f", "-p", device], {
    timeoutMs: opts.timeoutMs ?? MKFS_TIMEOUT_MS,
    okExitCodes: [1],
  });
}

/**
 * Grow an unmounted ext4 filesystem to its device. Offline because online
 * growth needs CAP_SYS_RESOURCE, which some hosts withhold even from root,
 * and this driver expands offline anyway.
 */
export async function growExt4Offline(device: string, opts: ToolOptions = {}): Promise<void> {
  await checkExt4(device, opts);
  await (opts.runner ?? runTool)("resize2fs", [device], {
    timeoutMs: opts.timeoutMs ?? MKFS_TIMEOUT_MS,
  });
}
