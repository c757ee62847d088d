/**
 * The two files the node keeps inside a volume's ZeroFS filesystem, reached
 * through the userspace 9P client: the NBD device file `/.nbd/disk` and the
 * volume record `/.zerofs-csi.json` (what allows a format).
 *
 * @module
 */

import {
  ensureDeviceFile,
  NinepClient,
  readDeviceFileSize,
  readVolumeRecord,
  type VolumeRecord,
  writeVolumeRecord,
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
}

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
  if (opts.readOnly) {
    if (existingSize === null) {
      throw failedPrecondition(
        `volume "${opts.volumeId}" has no device yet, so it cannot be staged read-only; ` +
          `stage it read-write once first`,
      );
    }
    return { record, deviceSizeBytes: existingSize, deviceCreated: false };
  }
  // A brand-new volume gets its record (formatted: false) with its device file. Either
  // may land first: a device without a record reads as zeros, which allows a format.
  const fresh = record ?? (existingSize === null ? newRecord(opts.recordFsType) : null);
  const [device] = await Promise.all([
    ensureDeviceFile(client, { name: DEVICE_EXPORT, sizeBytes: opts.sizeBytes }),
    fresh !== record ? writeVolumeRecord(client, fresh!) : Promise.resolve(),
  ]);
  return { record: fresh, deviceSizeBytes: device.sizeBytes, deviceCreated: device.created };
}

/** Grow the device file to at least `sizeBytes`; returns the size it now has. */
export async function growDeviceFile(ninepSocket: string, sizeBytes: number): Promise<number> {
  return await withVolumeFs(
    ninepSocket,
    async (client) =>
      (await ensureDeviceFile(client, { name: DEVICE_EXPORT, sizeBytes })).sizeBytes,
  );
}

/** Record that the device now carries a `fsType` filesystem. */
export async function recordFormatted(
  client: NinepClient,
  prior: VolumeRecord | null,
  fsType: VolumeRecord["fsType"],
): Promise<void> {
  await writeVolumeRecord(client, {
    ...(prior ?? newRecord(fsType)),
    fsType,
    formatted: true,
    formattedAt: new Date().toISOString(),
  });
}

function newRecord(fsType: VolumeRecord["fsType"]): VolumeRecord {
  return {
    schema: 1,
    driverVersion: DRIVER_VERSION,
    fsType,
    formatted: false,
    createdAt: new Date().toISOString(),
  };
}
