/**
 * What the guest kernel says about the driver's devices and processes, read
 * directly (sysfs, /proc) rather than through the driver under test.
 *
 * @module
 */

import assert from "node:assert/strict";
import { basename } from "node:path";
import { listProcesses } from "../helpers/node_env.ts";

/** One `/sys/block/nbdK` as the kernel shows it. */
export interface NbdSysfs {
  /** e.g. `nbd0` */
  name: string;
  /** `size`, in 512-byte sectors; 0 when nothing is connected. */
  sizeSectors: number;
  /** `pid` exists while a connection is configured. */
  hasPid: boolean;
}

/** The sysfs state of one nbd device (`/dev/nbdK` or `nbdK`). */
export async function readNbd(device: string): Promise<NbdSysfs> {
  const name = basename(device);
  const dir = `/sys/block/${name}`;
  const sizeSectors = Number((await Deno.readTextFile(`${dir}/size`)).trim());
  const hasPid = await Deno.stat(`${dir}/pid`).then(() => true, (e) => {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  });
  return { name, sizeSectors, hasPid };
}

/** Every nbd device the kernel created, in numeric order. */
export async function listNbd(): Promise<NbdSysfs[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir("/sys/block")) {
    if (/^nbd\d+$/.test(entry.name)) names.push(entry.name);
  }
  names.sort((a, b) => Number(a.slice(3)) - Number(b.slice(3)));
  return await Promise.all(names.map(readNbd));
}

/** Free = size 0 and no `pid` file. */
export function isFree(state: NbdSysfs): boolean {
  return state.sizeSectors === 0 && !state.hasPid;
}

/** Assert `/sys/block/<device>` shows the device free. */
export async function assertNbdFree(device: string): Promise<void> {
  const state = await readNbd(device);
  assert.ok(isFree(state), `${device} is not free after unstage: ${JSON.stringify(state)}`);
}

/** Assert `device` is connected with exactly `sizeBytes`. */
export async function assertNbdConnected(device: string, sizeBytes: number): Promise<void> {
  const state = await readNbd(device);
  assert.deepEqual(state, { name: basename(device), sizeSectors: sizeBytes / 512, hasPid: true });
}

/** Assert every nbd device the kernel has is free. */
export async function assertAllNbdFree(): Promise<void> {
  const busy = (await listNbd()).filter((s) => !isFree(s));
  assert.deepEqual(busy, [], "nbd devices still connected");
}

/** Executables of the volume's serving processes (ZeroFS, stand-in servers, the attach tool). */
const SERVING_TOOLS = new Set(["zerofs", "diod", "nbdkit", "nbd-client", "nbdfuse", "setpriv"]);

/**
 * Processes anywhere in the guest that serve or attach a volume: ZeroFS (or
 * its stand-in `zerofs_standin/main.ts` with diod and nbdkit), nbd-client,
 * nbdfuse.
 */
export async function servingProcesses(): Promise<string[]> {
  return (await listProcesses())
    .filter((p) =>
      p.argv.length > 0 &&
      (SERVING_TOOLS.has(basename(p.argv[0])) ||
        p.argv.some((a) => a.includes("zerofs_standin")))
    )
    .map((p) => `${p.pid}: ${p.argv.join(" ")}`);
}

/** Linux device number → major (glibc's gnu_dev_major). */
export function deviceMajor(rdev: number): number {
  return Number(((BigInt(rdev) >> 8n) & 0xfffn) | ((BigInt(rdev) >> 32n) & ~0xfffn));
}

/** The major number Linux gives nbd devices. */
export const NBD_MAJOR = 43;

/**
 * Read one 4 KiB block of `device` with O_DIRECT (past the page cache), so
 * the answer comes from the NBD server. True when the read succeeded.
 */
export async function directReadWorks(device: string, block: number): Promise<boolean> {
  const out = await new Deno.Command("dd", {
    args: [`if=${device}`, "of=/dev/null", "bs=4096", "count=1", `skip=${block}`, "iflag=direct"],
    stdout: "null",
    stderr: "null",
  }).output();
  return out.code === 0;
}
