/**
 * Where a volume's host-side files live: `<stateRoot>/v/<16 hex>/`, and its
 * lock at `<stateRoot>/locks/<16 hex>.lock`.
 *
 * The directory is named by a hash of the volume ID so that a 128-byte ID
 * still leaves unix socket paths under the kernel's 108-byte limit.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { join } from "node:path";

/** sun_path is 108 bytes including the terminating NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;

/** The files of one volume's state directory. */
export interface VolumePaths {
  dir: string;
  configToml: string;
  stateJson: string;
  ninepSocket: string;
  nbdSocket: string;
  zerofsPid: string;
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

/** Paths of one volume's state directory under `stateRoot`. */
export function volumePaths(stateRoot: string, volumeId: string): VolumePaths {
  const dir = join(stateRoot, "v", volumeDirName(volumeId));
  return {
    dir,
    configToml: join(dir, "config.toml"),
    stateJson: join(dir, "state.json"),
    ninepSocket: join(dir, "9p.sock"),
    nbdSocket: join(dir, "nbd.sock"),
    zerofsPid: join(dir, "zerofs.pid"),
    lockFile: join(stateRoot, "locks", `${volumeDirName(volumeId)}.lock`),
  };
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
