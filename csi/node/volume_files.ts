/**
 * The two files the node keeps inside a volume's ZeroFS filesystem, reached
 * through the userspace 9P client: the NBD device file `/.nbd/disk` and the
 * volume record `/.zerofs-csi.json` (what allows a format).
 *
 * @module
 */

import {
  compareZeroFsVersions,
  ensureDeviceFile,
  formatZeroFsVersion,
  incompatibilityReason,
  NinepClient,
  parseZeroFsVersion,
  readDeviceFileSize,
  readVolumeRecord,
  storageFamily,
  type VolumeRecord,
  writeVolumeRecord,
  type ZeroFsPin,
  type ZeroFsVersion,
} from "../../zerofs/mod.ts";
import { DRIVER_VERSION } from "../version.ts";
import { failedPrecondition } from "../errors.ts";

/** NBD export (and device file) name inside every volume. */
export const DEVICE_EXPORT = "disk";
const NINEP_TIMEOUT_MS = 10_000;

/** What the stage learned about the volume's files. */
export interface VolumeFiles {
  record: VolumeRecord | null;
  deviceSizeBytes: number;
  /** This call created the device file: it is sparse, so it reads as zeros. */
  deviceCreated: boolean;
  /** This call grew an existing device file (the capacity grew since the last stage). */
  deviceGrown: boolean;
}

/** Run `fn` with one 9P connection to the volume's ZeroFS, closed afterwards. */
export async function withVolumeFs<T>(
  ninepSocket: string,
  fn: (client: NinepClient) => Promise<T>,
): Promise<T> {
  const client = await NinepClient.connect(ninepSocket, { timeoutMs: NINEP_TIMEOUT_MS });
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

/** How the volume is being staged. */
export interface PrepareOptions {
  volumeId: string;
  sizeBytes: number;
  readOnly: boolean;
  /** `block` for raw access, else the filesystem the volume will carry. */
  recordFsType: VolumeRecord["fsType"];
  /** The ZeroFS release serving the volume now. */
  zerofsVersion: ZeroFsVersion;
}

/**
 * The release of the original Go driver's default image: a volume without a
 * record (made by that driver) was written by it.
 */
export const ORIGINAL_DRIVER_ZEROFS = "0.16.2";

/**
 * Read-write: ensure the device file has at least `sizeBytes` (never shrunk)
 * and, for a brand-new volume, write its record (formatted: false) first.
 * Read-only: the volume must already exist; nothing is written.
 */
export async function prepareVolumeFiles(
  client: NinepClient,
  opts: PrepareOptions,
): Promise<VolumeFiles> {
  // 9P multiplexes requests: the two reads (and the two writes below) travel together.
  const [record, existingSize] = await Promise.all([
    readVolumeRecord(client),
    readDeviceFileSize(client, DEVICE_EXPORT),
  ]);
  checkZeroFsPin(opts.volumeId, record, opts.zerofsVersion);
  if (opts.readOnly) {
    if (existingSize === null) {
      throw failedPrecondition(
        `volume "${opts.volumeId}" has no device yet, so it cannot be staged read-only; ` +
          `stage it read-write once first`,
      );
    }
    return { record, deviceSizeBytes: existingSize, deviceCreated: false, deviceGrown: false };
  }
  // A brand-new volume gets its record (formatted: false) with its device file. Either
  // may land first: a device without a record reads as zeros, which allows a format.
  const fresh = record
    ? withServedBy(record, opts.zerofsVersion)
    : existingSize === null
    ? newRecord(opts.recordFsType, opts.zerofsVersion)
    : null;
  const [device] = await Promise.all([
    ensureDeviceFile(client, { name: DEVICE_EXPORT, sizeBytes: opts.sizeBytes }),
    fresh !== record ? writeVolumeRecord(client, fresh!) : Promise.resolve(),
  ]);
  return {
    record: fresh,
    deviceSizeBytes: device.sizeBytes,
    deviceCreated: device.created,
    deviceGrown: device.grown,
  };
}

/**
 * The release serving the volume may keep serving it: the pin in its record
 * has the same storage family and is not newer. Checked right after ZeroFS
 * opened the volume and before anything is attached or written by the driver.
 * Without a pin there is nothing to check: ZeroFS refuses data of the other
 * family itself, so having opened it is the proof.
 */
function checkZeroFsPin(
  volumeId: string,
  record: VolumeRecord | null,
  runner: ZeroFsVersion,
): void {
  const pinned = record?.zerofs?.servedBy;
  if (pinned === undefined) return;
  const reason = incompatibilityReason(parseZeroFsVersion(pinned)!, runner);
  if (reason) throw failedPrecondition(`cannot stage volume "${volumeId}": ${reason}`);
}

/** The record with its pin brought up to `runner` (same object when nothing changes). */
function withServedBy(record: VolumeRecord, runner: ZeroFsVersion): VolumeRecord {
  const pin: ZeroFsPin = record.zerofs ?? {
    // A record from before pins existed: this release opened the volume, so it is of its family.
    formattedBy: formatZeroFsVersion(runner),
    servedBy: formatZeroFsVersion(runner),
  };
  const newer = compareZeroFsVersions(runner, parseZeroFsVersion(pin.servedBy)!) > 0;
  if (record.zerofs && !newer) return record;
  return { ...record, zerofs: { ...pin, servedBy: formatZeroFsVersion(runner) } };
}

/** Grow the device file to at least `sizeBytes`; returns the size it now has. */
export async function growDeviceFile(ninepSocket: string, sizeBytes: number): Promise<number> {
  return await withVolumeFs(
    ninepSocket,
    async (client) =>
      (await ensureDeviceFile(client, { name: DEVICE_EXPORT, sizeBytes })).sizeBytes,
  );
}

/**
 * Record that the device now carries a `fsType` filesystem. Without a prior
 * record the volume is the original driver's, adopted: pinned to its release.
 */
export async function recordFormatted(
  client: NinepClient,
  prior: VolumeRecord | null,
  fsType: VolumeRecord["fsType"],
  runner: ZeroFsVersion,
): Promise<void> {
  const release = formatZeroFsVersion(runner);
  const adopted = (): VolumeRecord => ({
    ...newRecord(fsType, runner),
    zerofs: {
      formattedBy: storageFamily(runner) === "0.x" ? ORIGINAL_DRIVER_ZEROFS : release,
      servedBy: release,
    },
  });
  await writeVolumeRecord(client, {
    ...(prior ?? adopted()),
    fsType,
    formatted: true,
    formattedAt: new Date().toISOString(),
  });
}

function newRecord(fsType: VolumeRecord["fsType"], runner: ZeroFsVersion): VolumeRecord {
  const release = formatZeroFsVersion(runner);
  return {
    schema: 2,
    driverVersion: DRIVER_VERSION,
    fsType,
    formatted: false,
    createdAt: new Date().toISOString(),
    zerofs: { formattedBy: release, servedBy: release },
  };
}
