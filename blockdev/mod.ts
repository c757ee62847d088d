/**
 * The node's block layer: attach an NBD export as a block device (kernel
 * `nbd-client` or userspace `nbdfuse` + loop), the node-wide device lock,
 * blkid / mkfs / mount / resize, mountinfo and volume usage.
 *
 * Other folders import only from here.
 *
 * @module
 */

export type {
  Attacher,
  Attachment,
  AttachMode,
  FsType,
  MountEntry,
  NbdTarget,
  RecordIntent,
} from "./types.ts";
export { NoFreeDeviceError } from "./types.ts";
export {
  DEFAULT_TOOL_TIMEOUT_MS,
  type DetachedOptions,
  type Runner,
  type RunOptions,
  type RunResult,
  runTool,
  spawnDetached,
  ToolError,
} from "./run.ts";
export {
  type ProcessKeeper,
  type ProcessKeeperEvent,
  type ProcessKeeperOptions,
  serveProcessKeeper,
  spawnThroughKeeper,
} from "./process_keeper.ts";
export { LockTimeoutError, NodeLock, type NodeLockHandle, type NodeLockOptions } from "./lock.ts";
export { KernelAttacher, type KernelAttacherOptions } from "./kernel.ts";
export { fusePaths, UserspaceAttacher, type UserspaceAttacherOptions } from "./userspace.ts";
export {
  autoAttachMode,
  isKernelModuleAvailable,
  type NbdAvailability,
  selectAttacher,
  type SelectAttacherOptions,
} from "./select.ts";
export {
  deviceSizeBytes,
  isZeroed,
  probeSignature,
  type Signature,
  type ToolOptions,
} from "./probe.ts";
export { growExt4Offline, growFilesystem, type GrowTarget, makeFilesystem } from "./mkfs.ts";
export {
  bindMount,
  type BindMountOptions,
  mountFilesystem,
  type MountFilesystemOptions,
  TENANT_MOUNT_OPTIONS,
  unmount,
} from "./mount.ts";
export { type FsStats, fsStats } from "./stats.ts";
export {
  findMountByTarget,
  findMountsBySource,
  type MountInfoOptions,
  parseMountInfo,
  readMountInfo,
} from "./mountinfo.ts";
export { listLoopDevices, loopBackingFile, type LoopDevice } from "./loop.ts";
export {
  isProcessAlive,
  liveStartTicks,
  processArgv,
  type ProcessStat,
  readProcessStat,
} from "./process.ts";
export { pathExists, type PathExistsOptions } from "./path_exists.ts";
export { type PollOptions, pollUntil } from "./poll.ts";
export { type PartialWriter, writeAll } from "./write_all.ts";
