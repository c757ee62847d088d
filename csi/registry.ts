/**
 * The controller's record of the volumes it created, so CreateVolume stays
 * idempotent across controller restarts.
 *
 * @module
 */

import { join } from "node:path";
import { readFileIfExists, writeFileAtomic } from "../zerofs/atomic_file.ts";
import { parsePin, type VolumePin } from "../zerofs/mod.ts";
import { internal } from "./errors.ts";
import { parseVolumeId } from "./validate.ts";

/** Schema version of a volume record. */
export const VOLUME_RECORD_SCHEMA = 1;

/** How a volume is published to one node (ControllerPublishVolume's arguments). */
export interface Publication {
  readonly: boolean;
  accessType: "mount" | "block";
  accessMode: string;
  /** Mount access with an fs_type given. */
  fsType?: string;
  mountFlags: string[];
}

/** What the controller remembers about one volume. */
export interface VolumeEntry {
  /** The volume ID (the record's key). */
  name: string;
  /**
   * The CreateVolume name the volume was created under (absent in records
   * written before this field, whose name was their ID). It differs from the
   * ID when the name was not a valid ID (see `volume_name.ts`); a second name
   * that maps to the same ID is refused with ALREADY_EXISTS.
   */
  requestName?: string;
  capacityBytes: number;
  /** `volume_context` returned by CreateVolume (parameters + capacityBytes + fsType). */
  volumeContext: Record<string, string>;
  /**
   * CreateVolume parameters as given (StorageClass parameters, including
   * `configMapName` and `deletePolicy`; never secret values). DeleteVolume
   * resolves the volume's object-store location from these.
   */
  parameters: Record<string, string>;
  /**
   * Where the volume lives and which Secrets unlock it (`zerofs/volume_pin.ts`),
   * fixed at CreateVolume; DeleteVolume deletes there whatever the ConfigMap
   * says now. Absent in records written before pins and in freshly adopted
   * ones: the controller pins those the first time it sees them.
   */
  pin?: VolumePin;
  createdAt: string;
  /**
   * Nodes the volume is published to: ControllerPublishVolume adds the node,
   * ControllerUnpublishVolume removes it. Non-empty = attached somewhere,
   * and DeleteVolume refuses. Absent in records written before this field.
   */
  publishedNodes?: string[];
  /**
   * How the volume is published to each node of publishedNodes, by node ID,
   * so a second publish with another capability or readonly flag is refused.
   * A separate field (not objects in publishedNodes) so that an older
   * controller still reads the record; a node listed without an entry here
   * (records written before this field) accepts any publication once.
   */
  publications?: Record<string, Publication>;
  /**
   * Set when DeleteVolume ran with `deletePolicy: retain`: the volume is gone
   * for CSI (every RPC treats it as unknown) but its objects were kept. The
   * record stays as a tombstone so a retried DeleteVolume never falls back to
   * the default location and deletes the kept objects.
   */
  retainedAt?: string;
}

/** Where volume entries live. */
export interface VolumeRegistry {
  /** The entry, or null when the volume is unknown. A corrupt record throws. */
  get(name: string): Promise<VolumeEntry | null>;
  put(entry: VolumeEntry): Promise<void>;
  /** Idempotent. */
  delete(name: string): Promise<void>;
}

/** One JSON file per volume under `<stateDir>/controller/volumes/<name>.json`. */
export class FileVolumeRegistry implements VolumeRegistry {
  readonly dir: string;
  constructor(stateDir: string) {
    this.dir = join(stateDir, "controller", "volumes");
  }

  /** Create the directory (0700). */
  async init(): Promise<void> {
    await Deno.mkdir(this.dir, { recursive: true, mode: 0o700 });
  }

  #path(name: string): string {
    // Names were validated as volume IDs: no "/" and no "..", so this stays in dir.
    return join(this.dir, `${parseVolumeId(name, "name")}.json`);
  }

  async get(name: string): Promise<VolumeEntry | null> {
    const path = this.#path(name);
    const text = await readFileIfExists(path);
    if (text === null) return null;
    return parseRecord(text, path);
  }

  async put(entry: VolumeEntry): Promise<void> {
    await writeFileAtomic(this.#path(entry.name), serializeRecord(entry));
  }

  async delete(name: string): Promise<void> {
    await Deno.remove(this.#path(name)).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
  }
}

/**
 * Parse a stored record (JSON with `schema`). Invalid JSON, another schema or
 * missing fields → INTERNAL naming `path`; never "absent".
 */
export function parseRecord(text: string, path: string): VolumeEntry {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw internal(
      `volume record ${path} is not valid JSON (${(e as Error).message}); ` +
        `inspect or remove it`,
    );
  }
  if (raw?.schema !== VOLUME_RECORD_SCHEMA) {
    throw internal(
      `volume record ${path} has schema ${String(raw?.schema)}; ` +
        `this driver reads schema ${VOLUME_RECORD_SCHEMA}`,
    );
  }
  const ok = typeof raw.name === "string" && Number.isSafeInteger(raw.capacityBytes) &&
    isStringMap(raw.volumeContext) && isStringMap(raw.parameters) &&
    typeof raw.createdAt === "string";
  const nodes = raw.publishedNodes;
  const okNodes = nodes === undefined ||
    (Array.isArray(nodes) && nodes.every((n) => typeof n === "string"));
  const okRetained = raw.retainedAt === undefined || typeof raw.retainedAt === "string";
  const okName = raw.requestName === undefined || typeof raw.requestName === "string";
  const pubs = raw.publications;
  const okPubs = pubs === undefined ||
    (pubs !== null && typeof pubs === "object" && Object.values(pubs).every(isPublication));
  if (!ok || !okNodes || !okRetained || !okName || !okPubs) {
    throw internal(`volume record ${path} is missing fields; inspect or remove it`);
  }
  const pin = raw.pin === undefined ? undefined : recordPin(raw.pin, path);
  return {
    name: raw.name as string,
    ...(raw.requestName !== undefined ? { requestName: raw.requestName as string } : {}),
    capacityBytes: raw.capacityBytes as number,
    volumeContext: raw.volumeContext as Record<string, string>,
    parameters: raw.parameters as Record<string, string>,
    ...(pin !== undefined ? { pin } : {}),
    createdAt: raw.createdAt as string,
    ...(nodes !== undefined ? { publishedNodes: nodes as string[] } : {}),
    ...(pubs !== undefined ? { publications: pubs as Record<string, Publication> } : {}),
    ...(raw.retainedAt !== undefined ? { retainedAt: raw.retainedAt as string } : {}),
  };
}

/** The stored form of an entry (pretty JSON with `schema`). */
export function serializeRecord(entry: VolumeEntry): string {
  return JSON.stringify({ schema: VOLUME_RECORD_SCHEMA, ...entry }, null, 2) + "\n";
}

function recordPin(value: unknown, path: string): VolumePin {
  if (!isStringMap(value)) {
    throw internal(`volume record ${path} has a malformed pin; inspect or remove it`);
  }
  try {
    return parsePin(value, `volume record ${path}: pin`);
  } catch (e) {
    throw internal(`${(e as Error).message}; inspect or remove the record`);
  }
}

function isPublication(v: unknown): v is Publication {
  const p = v as Publication;
  return p !== null && typeof p === "object" && typeof p.readonly === "boolean" &&
    (p.accessType === "mount" || p.accessType === "block") && typeof p.accessMode === "string" &&
    (p.fsType === undefined || typeof p.fsType === "string") && Array.isArray(p.mountFlags) &&
    p.mountFlags.every((f) => typeof f === "string");
}

function isStringMap(v: unknown): v is Record<string, string> {
  return v !== null && typeof v === "object" &&
    Object.values(v).every((x) => typeof x === "string");
}
