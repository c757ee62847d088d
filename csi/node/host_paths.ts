/**
 * Staging and target paths come from the CO; the node agent runs as root.
 * These checks keep what it creates, mounts onto and removes inside the
 * kubelet directory (`--kubelet-dir`), and never follow a symlink there: a
 * path whose component below the kubelet directory is a symlink is refused,
 * and missing directories are made one component at a time without
 * following links.
 *
 * @module
 */

import { join } from "node:path";
import { invalidArgument } from "../errors.ts";
import { parseAbsolutePath } from "../validate.ts";

/** The kubelet's default root directory (`kubelet --root-dir`). */
export const DEFAULT_KUBELET_DIR = "/var/lib/kubelet";

/**
 * Check a CO path field: absolute and normalized ({@linkcode parseAbsolutePath}),
 * strictly below `kubeletDir`, and no existing component below `kubeletDir`
 * is a symlink. Every failure is INVALID_ARGUMENT naming the field.
 *
 * @example
 * ```ts
 * const target = await parseKubeletPath(req.target_path, "target_path", "/var/lib/kubelet");
 * ```
 */
export async function parseKubeletPath(
  value: unknown,
  field: string,
  kubeletDir: string,
): Promise<string> {
  const path = parseAbsolutePath(value, field);
  relativeComponents(path, field, kubeletDir);
  await refuseSymlinks(path, field, kubeletDir);
  return path;
}

/** Each path from the first component below `kubeletDir` down to `path` itself. */
function* pathsBelow(path: string, field: string, kubeletDir: string): Generator<string> {
  let current = kubeletDir;
  for (const component of relativeComponents(path, field, kubeletDir)) {
    current = join(current, component);
    yield current;
  }
}

/**
 * Refuse `path` when a component below `kubeletDir` that exists is a symlink
 * (lstat, never stat). Components that do not exist yet end the walk.
 */
export async function refuseSymlinks(
  path: string,
  field: string,
  kubeletDir: string,
): Promise<void> {
  for (const current of pathsBelow(path, field, kubeletDir)) {
    const info = await lstatOrNull(current);
    if (info === null) return;
    if (info.isSymlink) throw symlinkRefused(field, path, current);
  }
}

/**
 * Make directory `path` (and its missing parents below `kubeletDir`) one
 * component at a time: an existing symlink or non-directory is refused, and
 * `mkdir` never follows a link (it fails on any existing name, which is then
 * lstat'ed again).
 */
export async function makeDirNoFollow(
  path: string,
  field: string,
  kubeletDir: string,
): Promise<void> {
  for (const current of pathsBelow(path, field, kubeletDir)) {
    let info = await lstatOrNull(current);
    if (info === null) {
      await Deno.mkdir(current).catch((e) => {
        if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
      });
      info = await Deno.lstat(current);
    }
    if (info.isSymlink) throw symlinkRefused(field, path, current);
    if (!info.isDirectory) {
      throw invalidArgument(`${field} "${path}": ${current} exists and is not a directory`);
    }
  }
}

/**
 * Make the regular file `path` (a block target) and its parent directories
 * without following links: an existing regular file is kept, a symlink is
 * refused, and a new file is created exclusively (O_EXCL does not follow).
 */
export async function makeFileNoFollow(
  path: string,
  field: string,
  kubeletDir: string,
): Promise<void> {
  const components = relativeComponents(path, field, kubeletDir);
  const parent = components.length > 1 ? join(kubeletDir, ...components.slice(0, -1)) : kubeletDir;
  if (parent !== kubeletDir) await makeDirNoFollow(parent, field, kubeletDir);
  const info = await lstatOrNull(path);
  if (info?.isSymlink) throw symlinkRefused(field, path, path);
  if (info && !info.isFile) {
    throw invalidArgument(`${field} "${path}" exists and is not a regular file`);
  }
  if (info) return;
  try {
    (await Deno.open(path, { createNew: true, write: true, mode: 0o600 })).close();
  } catch (e) {
    if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    const again = await Deno.lstat(path);
    if (!again.isFile) throw invalidArgument(`${field} "${path}" is not a regular file`);
  }
}

/** The components of `path` below `kubeletDir`; refused when it is not strictly below. */
function relativeComponents(path: string, field: string, kubeletDir: string): string[] {
  if (!path.startsWith(kubeletDir + "/") || path.length === kubeletDir.length + 1) {
    throw invalidArgument(
      `${field} "${path}" is not inside the kubelet directory ${kubeletDir}; ` +
        `the node agent only creates and mounts paths below it (see --kubelet-dir)`,
    );
  }
  return path.slice(kubeletDir.length + 1).split("/");
}

function symlinkRefused(field: string, path: string, link: string) {
  return invalidArgument(
    `${field} "${path}": ${link} is a symlink; the node agent does not follow symlinks ` +
      `below the kubelet directory`,
  );
}

async function lstatOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.lstat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/**
 * Validate a `--kubelet-dir` value: absolute, normalized, not `/`. Returns
 * an error message, or null when it is fine.
 */
export function kubeletDirProblem(dir: string): string | null {
  try {
    parseAbsolutePath(dir, "--kubelet-dir");
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}
