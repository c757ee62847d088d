/**
 * The volume record `/.zerofs-csi.json` inside a volume's ZeroFS filesystem:
 * which filesystem the driver put on the device and whether it is formatted.
 * It is what allows a format ("never format twice"), so reading it never
 * guesses: only "file does not exist" means "no record".
 *
 * @module
 */

import { isNotFound, type NinepClient } from "./ninep/mod.ts";
import { CorruptRecordError, defineRecord, type RecordFields } from "./record_file.ts";

/** Where the record lives, from the filesystem root. */
export const VOLUME_RECORD_PATH = "/.zerofs-csi.json";
const TEMP_PATH = `${VOLUME_RECORD_PATH}.tmp`;
const RECORD_MODE = 0o600;
/** A real record is a few hundred bytes; anything this large is not one. */
const MAX_RECORD_BYTES = 64 * 1024;
const FS_TYPES = ["ext4", "xfs", "btrfs", "block"] as const;
const RELEASE = /^\d+\.\d+\.\d+$/;

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
export class VolumeRecordError extends CorruptRecordError {
  override readonly name = "VolumeRecordError";
}

/** Written by this driver; schema 1 (before the ZeroFS pin) is still read. */
const VOLUME_RECORD = defineRecord<VolumeRecord>({
  kind: "volume record",
  schema: 2,
  readableSchemas: [1, 2],
  remedy: "refusing to guess the volume's state — inspect or restore it by hand",
  errorClass: VolumeRecordError,
  validate: (f, schema) => ({
    schema: schema as 1 | 2,
    driverVersion: f.string("driverVersion", { nonEmpty: true }),
    fsType: f.oneOf("fsType", FS_TYPES),
    formatted: f.boolean("formatted"),
    createdAt: f.time("createdAt"),
    formattedAt: f.optional("formattedAt", (r, name) => r.time(name)),
    zerofs: schema === 2 ? zerofsPin(f) : f.optional("zerofs", zerofsPin),
  }),
});

function zerofsPin(f: RecordFields): ZeroFsPin {
  const pin = f.object("zerofs");
  const release = (name: string): string =>
    pin.check(name, (v) => typeof v === "string" && RELEASE.test(v), "a ZeroFS release");
  return { formattedBy: release("formattedBy"), servedBy: release("servedBy") };
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
 * rename it over the record, fsync the root directory. Always written as
 * the current schema.
 */
export async function writeVolumeRecord(client: NinepClient, record: VolumeRecord): Promise<void> {
  const bytes = new TextEncoder().encode(VOLUME_RECORD.serialize(record));
  await client.writeFile(TEMP_PATH, bytes, { mode: RECORD_MODE });
  await client.rename(TEMP_PATH, VOLUME_RECORD_PATH);
  await client.fsyncDir("/");
}

/** Parse and validate record bytes; throws {@linkcode VolumeRecordError}. */
export function parseVolumeRecord(bytes: Uint8Array): VolumeRecord {
  return VOLUME_RECORD.parse(bytes, VOLUME_RECORD_PATH);
}
