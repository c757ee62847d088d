/**
 * nbdfuse: exposes an NBD export as a regular file on a FUSE mount.
 *
 * @module
 */

import { findMountByTarget } from "./mountinfo.ts";
import type { ToolOptions } from "./probe.ts";
import { runTool, spawnDetached } from "./run.ts";

/** What {@linkcode startNbdfuse} serves. */
export interface NbdfuseOptions {
  /** The file to create; its directory becomes the FUSE mount point. */
  fuseFile: string;
  socketPath: string;
  exportName: string;
  readOnly: boolean;
  logPath: string;
}

/**
 * The NBD URI naming `exportName` on a unix socket. A URI rather than
 * `--unix`, because only the URI form carries an export name.
 */
export function nbdUnixUri(socketPath: string, exportName: string): string {
  return `nbd+unix:///${encodeURIComponent(exportName)}?socket=${encodeURIComponent(socketPath)}`;
}

/** The argv of nbdfuse; exported for the unit tests. */
export function nbdfuseArgs(opts: NbdfuseOptions): string[] {
  return [
    ...(opts.readOnly ? ["--readonly"] : []),
    opts.fuseFile,
    nbdUnixUri(opts.socketPath, opts.exportName),
  ];
}

/**
 * Start nbdfuse detached (own session, output to `logPath`), so it keeps
 * serving when the agent restarts. Returns its pid; the file appears once
 * it has connected.
 */
export async function startNbdfuse(
  opts: NbdfuseOptions & { spawn?: typeof spawnDetached },
): Promise<number> {
  return await (opts.spawn ?? spawnDetached)("nbdfuse", nbdfuseArgs(opts), {
    logPath: opts.logPath,
  });
}

/**
 * Unmount an nbdfuse mount (`fusermount3 -u`), which makes nbdfuse exit.
 * Idempotent: nothing mounted at `fuseDir` is success.
 */
export async function unmountFuse(fuseDir: string, opts: ToolOptions = {}): Promise<void> {
  if (!(await findMountByTarget(fuseDir))) return;
  await (opts.runner ?? runTool)("fusermount3", ["-u", fuseDir], { timeoutMs: opts.timeoutMs });
}
