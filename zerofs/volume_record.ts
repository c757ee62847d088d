/**
 * The volume record `/.zerofs-csi.json` inside a volume's ZeroFS filesystem:
 * which filesystem the driver put on the device and whether it is formatted.
 * It is what allows a format ("never format twice"), so reading it never
 * guesses: only "file does not exist" means "no record".
 *
 * @module
 */

import { isNotFound, type NinepClient } from "./ninep/mod.ts";

/** Where the record lives, from the filesystem root. */
export const VOLUME_RECORD_PATH = "/.zerofs-csi.json";
const TEMP_PATH = `${VOLUME_RECORD_PATH}.tmp`;
const RECORD_MODE = 0o600;
/** A real record is a few hundred bytes; anything this large is not one. */
const MAX_RECORD_BYTES = 64 * 1024;
/** Written by this driver; schema 1 (no ZeroFS pin) is still read. */
const SCHEMA = 2;
const READABLE_SCHEMAS: readonly number[] = [1, 2];
const FS_TYPES = ["ext4", "xfs", "btrfs", "block"] as const;

/** What the device holds: a filesystem, or raw block for the pod. */
export type VolumeFsType = typeof FS_TYPES[number];

/**
 * Which ZeroFS releases have served the volume (release numbers like
 * `0.16.2`): the first that wrote it, and the newest since. The volume is
 * pinned to that storage family and never handed to an older release.
 */
export interface ZeroFsPin {
  formattedBy: string;
  servedBy: string;
}

/** The record. Times are ISO 8601 strings. Schema 1 records carry no `zerofs` pin. */
export interface VolumeRecord {
  schema: 1 | 2;
  driverVersion: string;
  fsType: VolumeFsType;
  formatted: boolean;
  createdAt: string;
  formattedAt?: string;
  zerofs?: ZeroFsPin;
}

/** The record exists but cannot be trusted (→ INTERNAL; never treat it as absent). */
export class VolumeRecordError extends Error {
  override readonly name = "VolumeRecordError";
}

/**
 * Read the record. Null only when the file does not exist; any other failure
 * (I/O, unparsable JSON, unknown schema, bad fields) throws.
 *
 * @example
 * ```ts
 * const record = await readVolumeRecord(client);
 * if (record === null) { // adopt, or first stage
 * }
 * ```
 */
export async function readVolumeRecord(client: NinepClient): Promise<VolumeRecord | null> {
  let bytes: Uint8Array;
  try {
    bytes = await client.readFile(VOLUME_RECORD_PATH, { maxBytes: MAX_RECORD_BYTES });
  } catch (e) {
    if (isNotFound(e)) return null;
    throw e;
  }
  return parseVolumeRecord(bytes);
}

/**
 * Replace the record atomically: write `/.zerofs-csi.json.tmp`, fsync it,
 * rename it over the record, fsync the root directory.
 */
export async function writeVolumeRecord(client: NinepClient, record: VolumeRecord): Promise<void> {
  const current = validate({ ...record, schema: SCHEMA });
  const bytes = new TextEncoder().encode(JSON.stringify(current, null, 2) + "\n");
  await client.writeFile(TEMP_PATH, bytes, { mode: RECORD_MODE });
  await client.rename(TEMP_PATH, VOLUME_RECORD_PATH);
  await client.fsyncDir("/");
}

/** Parse and validate record bytes; throws {@linkcode VolumeRecordError}. */
export function parseVolumeRecord(bytes: Uint8Array): VolumeRecord {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    throw new VolumeRecordError(
      `volume record ${VOLUME_RECORD_PATH} is not valid JSON (${(e as Error).message}); ` +
        `refusing to guess the volume's state — inspect or restore it by hand`,
    );
  }
  return validate(value);
}

function validate(value: unknown): VolumeRecord {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw invalid("it is not a JSON object");
  }
  const r = value as Record<string, unknown>;
  if (!READABLE_SCHEMAS.includes(r.schema as number)) {
    throw invalid(
      `schema ${JSON.stringify(r.schema)} is not one of ${
        READABLE_SCHEMAS.join(", ")
      } (written by a newer driver? upgrade this one)`,
    );
  }
  if (typeof r.driverVersion !== "string" || r.driverVersion === "") {
    throw invalid("driverVersion is missing");
  }
  if (!FS_TYPES.includes(r.fsType as VolumeFsType)) {
    throw invalid(`fsType ${JSON.stringify(r.fsType)} is not one of ${FS_TYPES.join(", ")}`);
  }
  if (typeof r.formatted !== "boolean") throw invalid("formatted is not true or false");
  checkTime(r.createdAt, "createdAt");
  if (r.formattedAt !== undefined) checkTime(r.formattedAt, "formattedAt");
  const record: VolumeRecord = {
    schema: r.schema as 1 | 2,
    driverVersion: r.driverVersion,
    fsType: r.fsType as VolumeFsType,
    formatted: r.formatted,
    createdAt: r.createdAt as string,
  };
  if (r.formattedAt !== undefined) record.formattedAt = r.formattedAt as string;
  if (r.schema === 2 || r.zerofs !== undefined) record.zerofs = checkPin(r.zerofs);
  return record;
}

const RELEASE = /^\d+\.\d+\.\d+$/;

function checkPin(value: unknown): ZeroFsPin {
  const pin = value as Record<string, unknown> | null;
  if (typeof pin !== "object" || pin === null) throw invalid("zerofs (the ZeroFS pin) is missing");
  for (const field of ["formattedBy", "servedBy"]) {
    if (typeof pin[field] !== "string" || !RELEASE.test(pin[field] as string)) {
      throw invalid(`zerofs.${field} ${JSON.stringify(pin[field])} is not a ZeroFS release`);
    }
  }
  return { formattedBy: pin.formattedBy as string, servedBy: pin.servedBy as string };
}

function checkTime(value: unknown, field: string): void {
  if (typeof value !== "string" || Number.isNaN(Date.parse(value))) {
    throw invalid(`${field} ${JSON.stringify(value)} is not an ISO 8601 time`);
  }
}

function invalid(why: string): VolumeRecordError {
  return new VolumeRecordError(
    `volume record ${VOLUME_RECORD_PATH} is invalid: ${why}; refusing to guess the volume's ` +
      `state — inspect or restore it by hand`,
  );
}
