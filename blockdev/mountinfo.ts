/**
 * /proc/self/mountinfo: what is mounted where, read from the kernel rather
 * than from our own records.
 *
 * @module
 */

import { resolve } from "node:path";
import type { MountEntry } from "./types.ts";

/** The kernel escapes space, tab, newline and backslash as 3-digit octal (`\040`). */
function unescapeOctal(field: string): string {
  return field.replace(
    /\\([0-7]{3})/g,
    (_, octal: string) => String.fromCharCode(parseInt(octal, 8)),
  );
}

function parseLine(line: string): MountEntry {
  const fields = line.split(" ");
  // Optional fields (shared:N, master:N, …) end with a lone "-".
  const separator = fields.indexOf("-", 6);
  if (fields.length < 10 || separator < 0 || fields.length < separator + 4) {
    throw new Error(`Cannot parse mountinfo line "${line}": expected at least 10 fields and "-"`);
  }
  return {
    mountId: Number(fields[0]),
    parentId: Number(fields[1]),
    devNumbers: fields[2],
    root: unescapeOctal(fields[3]),
    mountPoint: unescapeOctal(fields[4]),
    options: fields[5].split(","),
    fsType: unescapeOctal(fields[separator + 1]),
    source: unescapeOctal(fields[separator + 2]),
    superOptions: fields[separator + 3].split(","),
  };
}

/**
 * Parse the text of a mountinfo file (proc(5) format). Throws on a malformed
 * line: a mount table we cannot read must not look like "nothing mounted".
 *
 * @example
 * ```ts
 * parseMountInfo("36 35 98:0 /mnt1 /mnt/my\\040disk rw,noatime master:1 - ext3 /dev/root rw\n");
 * // → [{ mountPoint: "/mnt/my disk", fsType: "ext3", source: "/dev/root", … }]
 * ```
 */
export function parseMountInfo(text: string): MountEntry[] {
  return text.split("\n").filter((line) => line !== "").map(parseLine);
}

/** Options shared by the mountinfo readers. */
export interface MountInfoOptions {
  /** Defaults to `/proc/self/mountinfo` (tests pass a fixture file). */
  mountInfoPath?: string;
}

/** Read and parse the current mount table. */
export async function readMountInfo(opts: MountInfoOptions = {}): Promise<MountEntry[]> {
  return parseMountInfo(await Deno.readTextFile(opts.mountInfoPath ?? "/proc/self/mountinfo"));
}

/**
 * The mount on `target`, the topmost one when several are stacked there, or
 * undefined when `target` is not a mount point.
 */
export async function findMountByTarget(
  target: string,
  opts: MountInfoOptions = {},
): Promise<MountEntry | undefined> {
  const wanted = resolve(target);
  const matches = (await readMountInfo(opts)).filter((m) => m.mountPoint === wanted);
  return matches.at(-1);
}

/**
 * Every mount whose source is `device` (by name, or by major:minor when the
 * device node exists — the name in mountinfo can differ from the one we used).
 */
export async function findMountsBySource(
  device: string,
  opts: MountInfoOptions = {},
): Promise<MountEntry[]> {
  const devNumbers = await blockDevNumbers(device);
  return (await readMountInfo(opts)).filter((m) =>
    m.source === device || (devNumbers !== undefined && m.devNumbers === devNumbers)
  );
}

async function blockDevNumbers(device: string): Promise<string | undefined> {
  try {
    const info = await Deno.stat(device);
    if (!info.isBlockDevice || info.rdev === null) return undefined;
    // Linux dev_t encoding (glibc gnu_dev_major/minor).
    const rdev = BigInt(info.rdev);
    const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
    const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
    return `${major}:${minor}`;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}
