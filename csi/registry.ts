/**
 * The controller's record of the volumes it created, so CreateVolume stays
 * idempotent across controller restarts.
 *
 * @module
 */

import { join } from "node:path";
import {
  defineRecord,
  parsePin,
  readRecordFile,
  RecordFieldError,
  type RecordFields,
  removeFileIfExists,
  type VolumePin,
  writeRecordFile,
} from "../zerofs/mod.ts";
import { parseVolumeId } from "./validate.ts";

/** How a volume is published to one node (ControllerPublishVolume's arguments). */
export interface Publication {
  readonly: boolean;
  accessType: "mount" | "block";
  accessMode: string;
  /** Mount access with an fs_type given. */
  fsType?: string;
  mountFlags: string[];
}

/** What the controller remembers about one volume it created (its registry entry). */
export interface ControllerVolumeEntry {
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
  get(name: string): Promise<ControllerVolumeEntry | null>;
  put(entry: ControllerVolumeEntry): Promise<void>;
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

  async get(name: string): Promise<ControllerVolumeEntry | null> {
    return await readRecordFile(CONTROLLER_VOLUME_ENTRY, this.#path(name));
  }

  async put(entry: ControllerVolumeEntry): Promise<void> {
    await writeRecordFile(CONTROLLER_VOLUME_ENTRY, this.#path(entry.name), entry);
  }

  async delete(name: string): Promise<void> {
    await removeFileIfExists(this.#path(name));
  }
}

/**
 * The stored form of a {@linkcode ControllerVolumeEntry}: pretty JSON with
 * `schema` 1, in the state directory and in the object store alike. A record
 * that does not read is a `CorruptRecordError` (→ INTERNAL), never "absent".
 */
export const CONTROLLER_VOLUME_ENTRY = defineRecord<ControllerVolumeEntry>({
  kind: "controller volume entry",
  schema: 1,
  remedy: "inspect or remove it",
  validate: (f) => ({
    name: f.string("name"),
    requestName: f.optional("requestName", (r, n) => r.string(n)),
    capacityBytes: f.integer("capacityBytes"),
    volumeContext: f.stringMap("volumeContext"),
    parameters: f.stringMap("parameters"),
    pin: f.optional("pin", entryPin),
    createdAt: f.string("createdAt"),
    publishedNodes: f.optional("publishedNodes", (r, n) => r.stringList(n)),
    publications: f.optional(
      "publications",
      (r, n) => r.check<Record<string, Publication>>(n, isPublicationMap, "a map of publications"),
    ),
    retainedAt: f.optional("retainedAt", (r, n) => r.string(n)),
  }),
});

function entryPin(f: RecordFields, name: string): VolumePin {
  const raw = f.stringMap(name);
  try {
    return parsePin(raw, name);
  } catch (e) {
    throw new RecordFieldError(name, `is not a valid pin (${(e as Error).message})`);
  }
}

function isPublicationMap(v: unknown): boolean {
  return v !== null && typeof v === "object" && Object.values(v).every(isPublication);
}

function isPublication(v: unknown): v is Publication {
  const p = v as Publication;
  return p !== null && typeof p === "object" && typeof p.readonly === "boolean" &&
    (p.accessType === "mount" || p.accessType === "block") && typeof p.accessMode === "string" &&
    (p.fsType === undefined || typeof p.fsType === "string") && Array.isArray(p.mountFlags) &&
    p.mountFlags.every((f) => typeof f === "string");
}
