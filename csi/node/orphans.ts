/**
 * The orphan scan: what this node's kernel and process table hold under the
 * driver's state root that no volume's state record owns — connected nbd
 * devices, loop devices backed by a file under the state root, FUSE and other
 * mounts under the state root or on such a device, and ZeroFS processes whose
 * config lies under the state root. A crash between an effect and its record,
 * or a record removed by hand, leaves them.
 *
 * Reported only (log at agent start, gauge, doctor), never destroyed: nothing
 * here proves a device or mount unused, and an nbd device may belong to other
 * software on the node.
 *
 * @module
 */

import { join } from "node:path";
import {
  loopBackingFile,
  type LoopDevice,
  type MountEntry,
  processArgv,
  readMountInfo,
} from "../../blockdev/mod.ts";
import { volumePaths, zerofsConfigOf } from "../../zerofs/mod.ts";
import type { NodeVolumeState } from "./state.ts";

/** What kind of thing was left behind. */
export type OrphanKind = "nbd" | "loop" | "fuse" | "mount" | "zerofs";

/** Every kind, in report order (the gauge sets each, zero included). */
export const ORPHAN_KINDS: readonly OrphanKind[] = ["nbd", "loop", "fuse", "mount", "zerofs"];

/** One thing no record owns. */
export interface Orphan {
  kind: OrphanKind;
  /** The device, mount point or `pid <n>`. */
  what: string;
  /** What it is and what to do about it. */
  detail: string;
}

/** A connected /dev/nbdK (sysfs `pid` present). */
export interface ConnectedNbd {
  device: string;
  /** The nbd-client pid the kernel shows. */
  pid: number;
}

/** A process and its argv. */
export interface ProcessArgv {
  pid: number;
  argv: string[];
}

/** What the scan compares; the reader fills it from the host. */
export interface OrphanScanInput {
  stateRoot: string;
  records: Pick<
    NodeVolumeState,
    "volumeId" | "stagingPath" | "attachment" | "publishedTargets"
  >[];
  mounts: MountEntry[];
  nbdDevices: ConnectedNbd[];
  loopDevices: LoopDevice[];
  processes: ProcessArgv[];
}

/** Pure: everything in `input` under the state root (or connected) that no record owns. */
export function findOrphans(input: OrphanScanInput): Orphan[] {
  const root = input.stateRoot.replace(/\/+$/, "");
  const under = (path: string) => path.startsWith(`${root}/`);
  const ownedDevices = new Set(input.records.flatMap((r) => r.attachment?.device || []));
  const ownedDirs = new Set(input.records.map((r) => volumePaths(root, r.volumeId).dir));
  const ownedMounts = new Set(input.records.flatMap((r) => [
    r.stagingPath,
    ...(r.publishedTargets ?? []).map((t) => t.path),
    ...(r.attachment?.fuseDir ? [r.attachment.fuseDir] : []),
  ]));
  const ownedByDir = (path: string) => [...ownedDirs].some((d) => path.startsWith(`${d}/`));
  const orphans: Orphan[] = [];
  const orphanDevices = new Set<string>();

  for (const nbd of input.nbdDevices) {
    if (ownedDevices.has(nbd.device)) continue;
    orphanDevices.add(nbd.device);
    orphans.push({
      kind: "nbd",
      what: nbd.device,
      detail: `connected (nbd-client pid ${nbd.pid}) but no volume record names it; ` +
        `if no other software on this node uses nbd, unmount what it holds and run ` +
        `\`nbd-client -d ${nbd.device}\``,
    });
  }
  for (const loop of input.loopDevices) {
    if (!under(loop.backingFile) || ownedDevices.has(loop.device)) continue;
    orphanDevices.add(loop.device);
    orphans.push({
      kind: "loop",
      what: loop.device,
      detail: `backed by ${loop.backingFile} under the state root, but no volume record ` +
        `names it; unmount what it holds, then \`losetup -d ${loop.device}\``,
    });
  }
  for (const m of input.mounts) {
    if (ownedMounts.has(m.mountPoint)) continue;
    const fuse = m.fsType.startsWith("fuse");
    // A mount inside a recorded volume's directory is that volume's (its unstage undoes it).
    if (under(m.mountPoint) && !ownedByDir(m.mountPoint)) {
      orphans.push({
        kind: fuse ? "fuse" : "mount",
        what: m.mountPoint,
        detail: `${m.fsType} mount of ${m.source} under the state root that no volume record ` +
          `names; once nothing uses it, \`umount ${m.mountPoint}\``,
      });
    } else if (orphanDevices.has(m.source)) {
      orphans.push({
        kind: "mount",
        what: m.mountPoint,
        detail: `${m.fsType} mount of the orphaned ${m.source}; stop what uses it, then ` +
          `\`umount ${m.mountPoint}\``,
      });
    }
  }
  for (const p of input.processes) {
    const config = zerofsConfigOf(p.argv);
    if (!config || !under(config) || ownedDirs.has(dirnameOf(config))) continue;
    orphans.push({
      kind: "zerofs",
      what: `pid ${p.pid}`,
      detail: `ZeroFS running ${config}, a volume no record names; it holds the volume's ` +
        `writer fence: once no device or mount uses it, \`kill ${p.pid}\``,
    });
  }
  return orphans;
}

/** How many orphans of each kind (every kind present, zero included). */
export function countOrphans(orphans: readonly Orphan[]): Record<OrphanKind, number> {
  const counts = Object.fromEntries(ORPHAN_KINDS.map((k) => [k, 0])) as Record<
    OrphanKind,
    number
  >;
  for (const o of orphans) counts[o.kind]++;
  return counts;
}

function dirnameOf(path: string): string {
  return path.slice(0, path.lastIndexOf("/"));
}

/** Where the reader looks; tests pass fixture roots. */
export interface OrphanReadOptions {
  sysRoot?: string;
  procRoot?: string;
}

/** Read the host and scan it against `records`. */
export async function scanOrphans(
  stateRoot: string,
  records: OrphanScanInput["records"],
  opts: OrphanReadOptions = {},
): Promise<Orphan[]> {
  const [mounts, nbdDevices, loopDevices, processes] = await Promise.all([
    readMountInfo(opts.procRoot ? { mountInfoPath: `${opts.procRoot}/self/mountinfo` } : {}),
    readConnectedNbd(opts.sysRoot ?? "/sys"),
    readBoundLoops(opts.sysRoot ?? "/sys"),
    readProcesses(opts.procRoot ?? "/proc"),
  ]);
  return findOrphans({ stateRoot, records, mounts, nbdDevices, loopDevices, processes });
}

async function readConnectedNbd(sysRoot: string): Promise<ConnectedNbd[]> {
  const found: ConnectedNbd[] = [];
  for await (const entry of readDirIfExists(join(sysRoot, "block"))) {
    if (!/^nbd\d+$/.test(entry.name)) continue;
    const pid = await Deno.readTextFile(join(sysRoot, "block", entry.name, "pid")).catch((e) => {
      if (e instanceof Deno.errors.NotFound) return undefined;
      throw e;
    });
    if (pid !== undefined) found.push({ device: `/dev/${entry.name}`, pid: Number(pid.trim()) });
  }
  return found.sort((a, b) => a.device.localeCompare(b.device, "en", { numeric: true }));
}

/** Bound loop devices from sysfs (no `losetup`: the scan starts no host tool). */
async function readBoundLoops(sysRoot: string): Promise<LoopDevice[]> {
  const found: LoopDevice[] = [];
  for await (const entry of readDirIfExists(join(sysRoot, "block"))) {
    if (!/^loop\d+$/.test(entry.name)) continue;
    const device = `/dev/${entry.name}`;
    const backingFile = await loopBackingFile(device, { sysRoot });
    if (backingFile !== undefined) found.push({ device, backingFile });
  }
  return found.sort((a, b) => a.device.localeCompare(b.device, "en", { numeric: true }));
}

async function readProcesses(procRoot: string): Promise<ProcessArgv[]> {
  const found: ProcessArgv[] = [];
  for await (const entry of readDirIfExists(procRoot)) {
    if (!/^\d+$/.test(entry.name)) continue;
    const argv = await processArgv(Number(entry.name), procRoot);
    if (argv) found.push({ pid: Number(entry.name), argv });
  }
  return found;
}

async function* readDirIfExists(dir: string): AsyncIterable<Deno.DirEntry> {
  try {
    yield* Deno.readDir(dir);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}
