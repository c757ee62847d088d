/**
 * The one namer of the driver's files on a node: a volume's state directory
 * `<stateRoot>/v/<16 hex>/` and the files in it, its lock at
 * `<stateRoot>/locks/<16 hex>.lock`, the agent's `<stateRoot>/node.lock`, and
 * the same state directory as the ZeroFS pod sees it ({@linkcode POD_STATE_DIR}).
 *
 * The directory is named by a hash of the volume ID so that a 128-byte ID
 * still leaves unix socket paths under the kernel's 108-byte limit.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { basename, join } from "node:path";

/** sun_path is 108 bytes including the terminating NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;

/** Where the volume's state directory appears inside the ZeroFS pod (a hostPath mount). */
export const POD_STATE_DIR = "/zerofs";

/** The files of a state directory, wherever it is seen from (host or pod). */
export interface StateDirFiles {
  /** ZeroFS's configuration (0600), written by the runner. */
  configToml: string;
  /** The node's record of the volume. */
  stateJson: string;
  ninepSocket: string;
  nbdSocket: string;
  /** The process runner's record of its ZeroFS. */
  zerofsPid: string;
  /** The process runner's ZeroFS output; rotated to {@linkcode rotatedLogPath}. */
  zerofsLog: string;
}

/** The files of one volume's state directory on the host. */
export interface VolumePaths extends StateDirFiles {
  dir: string;
  /**
   * The cross-process volume lock. It sits beside the volume directories, not
   * in one: unstage removes the volume's directory while holding the lock, and
   * a lock file that vanished with it would let a second process lock a new
   * file of the same name.
   */
  lockFile: string;
}

/** Stable 16-hex-digit name for a volume's state directory. */
export function volumeDirName(volumeId: string): string {
  return createHash("sha256").update(volumeId).digest("hex").slice(0, 16);
}

/** The directory that holds every volume's state directory. */
export function volumeDirsRoot(stateRoot: string): string {
  return join(stateRoot, "v");
}

/** The node agent's own lock (one agent per state root). */
export function nodeLockPath(stateRoot: string): string {
  return join(stateRoot, "node.lock");
}

/** The files of the state directory `dir` (a host path, or {@linkcode POD_STATE_DIR}). */
export function stateDirFiles(dir: string): StateDirFiles {
  return {
    configToml: join(dir, "config.toml"),
    stateJson: join(dir, "state.json"),
    ninepSocket: join(dir, "9p.sock"),
    nbdSocket: join(dir, "nbd.sock"),
    zerofsPid: join(dir, "zerofs.pid"),
    zerofsLog: join(dir, "zerofs.log"),
  };
}

/** Where a log file is moved when it is rotated. */
export function rotatedLogPath(log: string): string {
  return `${log}.1`;
}

/**
 * The volume's own directory under the ZeroFS disk-cache root `cacheRoot`
 * (the `cacheDir` setting; without one, under the volume's state directory).
 */
export function volumeCacheDir(cacheRoot: string, volumeDir: string): string {
  return join(cacheRoot || join(volumeDir, "cache"), basename(volumeDir));
}

/** Paths of one volume's state directory under `stateRoot`. */
export function volumePaths(stateRoot: string, volumeId: string): VolumePaths {
  const name = volumeDirName(volumeId);
  const dir = join(volumeDirsRoot(stateRoot), name);
  return { dir, ...stateDirFiles(dir), lockFile: join(stateRoot, "locks", `${name}.lock`) };
}

/** Throws when a unix socket path would not fit in sun_path. */
export function checkSocketPath(path: string): void {
  const bytes = new TextEncoder().encode(path).length;
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    throw new RangeError(
      `unix socket path "${path}" is ${bytes} bytes; the kernel allows ${MAX_SOCKET_PATH_BYTES}. ` +
        `Choose a shorter --state-dir.`,
    );
  }
}
