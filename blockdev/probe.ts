/**
 * What is on a device: a filesystem signature (blkid), all zeros, its size.
 * These answers decide whether a volume may be formatted, so every one of them
 * is either positive or an exception — never a guess.
 *
 * @module
 */

import { type Runner, runTool } from "./run.ts";

/** What `blkid -p` found on a device. */
export type Signature =
  | { kind: "none" }
  | { kind: "filesystem"; fsType: string; uuid?: string }
  | { kind: "other"; type: string };

/** Options shared by the tool wrappers in this folder. */
export interface ToolOptions {
  /** Injected in unit tests; defaults to {@linkcode runTool}. */
  runner?: Runner;
  timeoutMs?: number;
}

/** blkid: 2 = "nothing found"; the agent checks the device is readable first. */
const BLKID_NOTHING_FOUND = 2;

/**
 * Low-level probe of `device` for any signature (filesystem, RAID, LUKS,
 * partition table).
 *
 * blkid also exits 2 when it cannot open the device, so the device is first
 * opened and read here: "none" is returned only for a readable, non-empty
 * block device on which blkid found nothing. Any other outcome throws.
 */
export async function probeSignature(device: string, opts: ToolOptions = {}): Promise<Signature> {
  await assertReadableBlockDevice(device);
  const runner = opts.runner ?? runTool;
  const result = await runner("blkid", ["-p", "-o", "export", device], {
    okExitCodes: [BLKID_NOTHING_FOUND],
    timeoutMs: opts.timeoutMs,
  });
  if (result.exitCode === BLKID_NOTHING_FOUND) return { kind: "none" };
  return interpretBlkidExport(result.stdout, device);
}

/** Turn `blkid -o export` output (KEY=value lines) into a {@linkcode Signature}. */
export function interpretBlkidExport(stdout: string, device: string): Signature {
  const tags = new Map<string, string>();
  for (const line of stdout.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) tags.set(line.slice(0, eq), line.slice(eq + 1));
  }
  const type = tags.get("TYPE");
  if (type && tags.get("USAGE") === "filesystem") {
    const uuid = tags.get("UUID");
    return uuid ? { kind: "filesystem", fsType: type, uuid } : { kind: "filesystem", fsType: type };
  }
  if (type) return { kind: "other", type };
  const partitionTable = tags.get("PTTYPE");
  if (partitionTable) return { kind: "other", type: `partition table (${partitionTable})` };
  throw new Error(
    `Cannot interpret blkid output for ${device}: it succeeded but named no TYPE or PTTYPE ` +
      `(${JSON.stringify(stdout.trim())}). Inspect the device by hand before formatting.`,
  );
}

async function assertReadableBlockDevice(device: string): Promise<void> {
  const info = await Deno.stat(device).catch((e) => {
    throw new Error(`Cannot probe ${device}: ${e instanceof Error ? e.message : e}`);
  });
  if (!info.isBlockDevice) throw new Error(`Cannot probe ${device}: it is not a block device`);
  const first = await readHead(device, 4096);
  if (first.length === 0) {
    throw new Error(`Cannot probe ${device}: the device has size 0 (not connected?)`);
  }
}

async function readHead(device: string, bytes: number): Promise<Uint8Array> {
  using file = await Deno.open(device, { read: true });
  const buffer = new Uint8Array(bytes);
  let filled = 0;
  while (filled < bytes) {
    const n = await file.read(buffer.subarray(filled));
    if (n === null) break;
    filled += n;
  }
  return buffer.subarray(0, filled);
}

/**
 * True when the first `bytes` of `device` (default 1 MiB) are all zero.
 * A device shorter than that is judged on what it has; a read error throws.
 */
export async function isZeroed(device: string, opts: { bytes?: number } = {}): Promise<boolean> {
  const head = await readHead(device, opts.bytes ?? 1024 * 1024);
  if (head.length === 0) throw new Error(`Cannot check ${device} for zeros: it has size 0`);
  return head.every((byte) => byte === 0);
}

/** Size of a block device in bytes (`blockdev --getsize64`). */
export async function deviceSizeBytes(device: string, opts: ToolOptions = {}): Promise<number> {
  const runner = opts.runner ?? runTool;
  const { stdout } = await runner("blockdev", ["--getsize64", device], {
    timeoutMs: opts.timeoutMs,
  });
  const size = Number(stdout.trim());
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new Error(`Cannot read the size of ${device}: blockdev printed "${stdout.trim()}"`);
  }
  return size;
}
