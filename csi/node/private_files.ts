/**
 * A volume's ZeroFS serves 9P and NBD without authentication on unix sockets
 * in the volume's state directory: whoever can connect can read and write
 * the volume. Before anything is attached, the node checks that nobody but
 * the agent's user (root) can: the state directory is 0700 and owned by it,
 * and each socket is owned by it with no group or other permission bits.
 *
 * @module
 */

import type { VolumePaths } from "../../zerofs/mod.ts";
import { failedPrecondition } from "../errors.ts";

/** Options for {@linkcode checkPrivateVolumeFiles}. */
export interface PrivateFilesOptions {
  volumeId: string;
  /** The owner every file must have; default the agent's own uid (root on a node). */
  uid?: number;
  /**
   * Remove group/other bits from sockets the agent owns before checking: for
   * ZeroFS in a pod, whose umask the driver does not set (the 0700 directory
   * already keeps everyone else out). The process runner's launcher sets
   * umask 077, so there a looser socket is refused, not repaired.
   */
  tightenSockets?: boolean;
}

/** Throws FAILED_PRECONDITION naming the path and its mode when a file is reachable by others. */
export async function checkPrivateVolumeFiles(
  paths: Pick<VolumePaths, "dir" | "ninepSocket" | "nbdSocket">,
  opts: PrivateFilesOptions,
): Promise<void> {
  const uid = opts.uid ?? Deno.uid() ?? 0;
  const dir = await Deno.lstat(paths.dir);
  if (!dir.isDirectory || dir.uid !== uid || modeBits(dir) !== 0o700) {
    throw refusal(opts.volumeId, paths.dir, dir, uid, "a directory of mode 0700");
  }
  for (const [what, path] of [["9P", paths.ninepSocket], ["NBD", paths.nbdSocket]] as const) {
    let info = await Deno.lstat(path);
    if (opts.tightenSockets && info.isSocket && info.uid === uid && (modeBits(info) & 0o077)) {
      await Deno.chmod(path, modeBits(info) & 0o700);
      info = await Deno.lstat(path);
    }
    if (!info.isSocket || info.uid !== uid || (modeBits(info) & 0o077) !== 0) {
      throw refusal(opts.volumeId, path, info, uid, `a ${what} socket with no group or other bits`);
    }
  }
}

function modeBits(info: Deno.FileInfo): number {
  return (info.mode ?? 0) & 0o7777;
}

function refusal(
  volumeId: string,
  path: string,
  info: Deno.FileInfo,
  uid: number,
  wanted: string,
) {
  const kind = info.isDirectory ? "directory" : info.isSocket ? "socket" : "file";
  return failedPrecondition(
    `cannot stage volume "${volumeId}": ${path} is a ${kind} of mode ` +
      `${modeBits(info).toString(8).padStart(4, "0")} owned by uid ${info.uid}, but must be ` +
      `${wanted} owned by uid ${uid}: ZeroFS's sockets have no authentication. ` +
      `Check what changed the node's state directory, then retry`,
  );
}
