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
const SCHEMA = 1;
const FS_TYPES = ["ext4", "xfs", "btrfs", "block"] as const;

/** What the device holds: a filesystem, or raw block for the pod. */
export type VolumeFsType = typeof FS_TYPES[number];

/** The record, schema 1. Times are ISO 8601 strings. */
export interface VolumeRecord {
  schema: 1;
  driverVersion: string;
  fsType: VolumeFsType;
  formatted: boolean;
  createdAt: string;
  formattedAt?: string;
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
  const bytes = new TextEncoder().encode(JSON.stringify(validate(record), null, 2) + "\n");
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
  if (r.schema !== SCHEMA) {
    throw invalid(
      `schema ${
        JSON.stringify(r.schema)
      } is not ${SCHEMA} (written by a newer driver? upgrade this one)`,
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
    schema: SCHEMA,
    driverVersion: r.driverVersion,
    fsType: r.fsType as VolumeFsType,
    formatted: r.formatted,
    createdAt: r.createdAt as string,
  };
  if (r.formattedAt !== undefined) record.formattedAt = r.formattedAt as string;
  return record;
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
