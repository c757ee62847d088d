/**
 * Whether something is at a path: the one copy for the driver and its tests.
 *
 * @module
 */

/** Options for {@linkcode pathExists}. */
export interface PathExistsOptions {
  /**
   * Default true: a symlink counts only when its target exists. False: the
   * entry itself counts (a dangling symlink is "there").
   */
  followSymlinks?: boolean;
}

/**
 * True when `path` exists. Only "not found" is an answer; any other error
 * (permission denied, I/O error) is thrown, never read as "absent".
 *
 * @example
 * ```ts
 * if (await pathExists("/sys/module/nbd")) console.log("nbd is loaded");
 * ```
 */
export async function pathExists(path: string, opts: PathExistsOptions = {}): Promise<boolean> {
  try {
    await (opts.followSymlinks === false ? Deno.lstat(path) : Deno.stat(path));
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}
