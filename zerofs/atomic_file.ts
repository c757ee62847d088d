/**
 * Crash-safe state files: a reader sees the old content or the new, never a
 * torn write, and the rename survives power loss.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { writeAll } from "../blockdev/mod.ts";

/**
 * Write `text` to `path` atomically: temp file (0600) in the same directory,
 * fsync, rename over the old file, fsync the directory.
 */
export async function writeFileAtomic(path: string, text: string): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${crypto.randomUUID()}.tmp`);
  const file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o600 });
  try {
    await writeAll(file, new TextEncoder().encode(text));
    await file.sync();
  } finally {
    file.close();
  }
  try {
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  const dirHandle = await Deno.open(dir, { read: true });
  try {
    await dirHandle.sync();
  } finally {
    dirHandle.close();
  }
}

/** Read a text file; `null` only when it does not exist. */
export async function readFileIfExists(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/** Remove a file; one that does not exist is already removed. */
export async function removeFileIfExists(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}
