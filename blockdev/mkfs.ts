/**
 * Creating and growing filesystems, with options that avoid whole-device
 * passes (discard, inode table zeroing) — each such pass is a full sweep of
 * object storage.
 *
 * @module
 */

import type { FsType } from "./types.ts";
import type { ToolOptions } from "./probe.ts";
import { runTool, ToolError } from "./run.ts";

/** mkfs on a 1 TiB device can take a while even with lazy init. */
const MKFS_TIMEOUT_MS = 10 * 60_000;

/**
 * mkfs.btrfs refuses to run when it cannot stat the backing file of any
 * mounted loop device, and a loop device backed by a FUSE file whose daemon
 * died (another volume's nbdfuse, killed with its container) answers
 * ENOTCONN: one broken volume would block every btrfs format on the node.
 * So it runs in a private mount namespace in which dead FUSE mounts are
 * lazily unmounted first. Live mounts stay visible, so its own "is this
 * device mounted" check still holds, and the host's mounts are untouched.
 * The mount list is read whole before the first unmount: reading
 * /proc/self/mounts while entries leave it skips entries. A fixed script:
 * the tool and its arguments arrive as "$@".
 */
const HIDE_DEAD_FUSE_MOUNTS = "mapfile -t mounts < /proc/self/mounts; " +
  'for m in "${mounts[@]}"; do read -r _src mp fstype _rest <<< "$m"; case "$fstype" in ' +
  'fuse|fuse.*) mp=$(printf "%b" "$mp"); ' +
  'stat -- "$mp" >/dev/null 2>&1 || umount -l -- "$mp" 2>/dev/null;; esac; ' +
  'done; exec "$@"';

/** `cmd`, run in a private mount namespace without the node's dead FUSE mounts. */
function withoutDeadFuseMounts(
  cmd: { tool: string; args: string[] },
): { tool: string; args: string[] } {
  return {
    tool: "unshare",
    args: [
      "--mount",
      "--propagation",
      "private",
      "bash",
      "-c",
      HIDE_DEAD_FUSE_MOUNTS,
      "zerofs-csi-hide-dead-mounts",
      cmd.tool,
      ...cmd.args,
    ],
  };
}

/** The argv of the mkfs tool for `fsType`. */
function mkfsCommand(
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
  const mkfs = mkfsCommand(device, fsType, opts);
  const { tool, args } = fsType === "btrfs" ? withoutDeadFuseMounts(mkfs) : mkfs;
  try {
    await (opts.runner ?? runTool)(tool, args, { timeoutMs: opts.timeoutMs ?? MKFS_TIMEOUT_MS });
  } catch (e) {
    // Name the mkfs tool, not the namespace wrapper, in what the user reads.
    if (!(e instanceof ToolError) || e.tool === mkfs.tool) throw e;
    throw new ToolError(mkfs.tool, mkfs.args, e.exitCode, e.stderrTail, e.timedOut);
  }
}

/** Where the filesystem to grow is: ext4 grows by device, xfs and btrfs by mount point. */
export interface GrowTarget {
  device: string;
  mountPoint: string;
}

/** The argv that grows `fsType` to fill its device. */
function growCommand(fsType: FsType, target: GrowTarget): { tool: string; args: string[] } {
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
async function checkExt4(device: string, opts: ToolOptions = {}): Promise<void> {
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
