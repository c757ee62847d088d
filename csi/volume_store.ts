/**
 * Volume records in the object store, so a controller that moves to another
 * node (or loses its state directory) still knows every volume's settings,
 * publish records and delete policy.
 *
 * Records live at `<home storageURL>/.zerofs-csi-volumes/<volumeId>.json`,
 * where the home is the controller's default storage location (settings-file
 * defaults, or the default ConfigMap). The directory name starts with ".",
 * which no volume ID may, so it is never inside any volume's prefix and a
 * DeleteVolume of any volume can never touch it.
 *
 * @module
 */

import type { S3Client } from "@aws-sdk/client-s3";
import {
  createS3Client,
  describeFailure,
  describeS3Error,
  endpointDescription,
  loadS3Sdk,
  type ObjectStoreAccess,
  ObjectStoreError,
  PRECONDITION_CODES,
  resolveVolumeLocation,
  SettingsError,
  withRetries,
} from "../zerofs/mod.ts";
import {
  CONTROLLER_VOLUME_ENTRY,
  type ControllerVolumeEntry,
  type VolumeRegistry,
} from "./registry.ts";
import { parseVolumeId } from "./validate.ts";

/** Folder (under the home storageURL) holding one JSON record per volume. */
export const RECORDS_DIR = ".zerofs-csi-volumes";

/** Bounded retries: a record is one small object. */
const RECORD_RETRY = { maxAttempts: 4, baseDelayMs: 100, maxDelayMs: 1_000 };

/** One JSON object per volume under `<home>/.zerofs-csi-volumes/`. */
export class ObjectStoreVolumeRegistry implements VolumeRegistry {
  readonly bucket: string;
  /** Ends with `.zerofs-csi-volumes/`. */
  readonly prefix: string;
  readonly #client: Promise<S3Client>;
  readonly #endpoint: string;

  /** `access` = the home location's settings and the controller's own credentials. */
  constructor(access: ObjectStoreAccess) {
    const location = resolveVolumeLocation(access.settings, RECORDS_DIR);
    if (location.scheme !== "s3" || location.bucket === "") {
      throw new SettingsError(
        `volume records need an s3:// default storageURL, not ${access.settings.storageURL}`,
      );
    }
    this.bucket = location.bucket;
    this.prefix = location.prefix;
    this.#client = createS3Client(access);
    this.#endpoint = endpointDescription(access.settings);
  }

  /** Object key of `name`'s record. */
  key(name: string): string {
    return `${this.prefix}${parseVolumeId(name, "name")}.json`;
  }

  /** `s3://bucket/key` of `name`'s record, for messages. */
  url(name: string): string {
    return `s3://${this.bucket}/${this.key(name)}`;
  }

  async get(name: string): Promise<ControllerVolumeEntry | null> {
    const Key = this.key(name);
    const text = await this.#call("GetObject", name, async () => {
      try {
        const { GetObjectCommand } = await loadS3Sdk();
        const client = await this.#client;
        const out = await client.send(new GetObjectCommand({ Bucket: this.bucket, Key }));
        return await out.Body!.transformToString();
      } catch (e) {
        if (describeS3Error(e).code === "NoSuchKey") return null;
        throw e;
      }
    });
    return text === null ? null : CONTROLLER_VOLUME_ENTRY.parse(text, this.url(name));
  }

  async put(entry: ControllerVolumeEntry): Promise<void> {
    const Key = this.key(entry.name);
    const { PutObjectCommand } = await loadS3Sdk();
    const client = await this.#client;
    await this.#call("PutObject", entry.name, () =>
      client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key,
          Body: CONTROLLER_VOLUME_ENTRY.serialize(entry),
          ContentType: "application/json",
        }),
      ));
  }

  async delete(name: string): Promise<void> {
    const Key = this.key(name);
    const { DeleteObjectCommand } = await loadS3Sdk();
    const client = await this.#client;
    await this.#call(
      "DeleteObject",
      name,
      () => client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key })),
    );
  }

  /** Release the HTTP client. */
  close(): void {
    this.#client.then((c) => c.destroy(), () => {});
  }

  async #call<T>(operation: string, name: string, send: () => Promise<T>): Promise<T> {
    try {
      return await withRetries(send, { policy: RECORD_RETRY });
    } catch (e) {
      const info = describeS3Error(e);
      const what = `volume record ${this.url(name)}: ${
        describeFailure(operation, info, this.#endpoint)
      }`;
      if (PRECONDITION_CODES.has(info.code)) {
        throw new SettingsError(
          `${what}; check the controller's default storageURL, awsEndpoint and its credentials`,
          "precondition",
        );
      }
      throw new ObjectStoreError(`${what}; it is safe to retry`, info.code, info.httpStatus);
    }
  }
}

/**
 * The object-store registry (the source of truth) with a local copy of every
 * record in the state directory. Writes go to the object store first, so a
 * record the controller acknowledged survives the loss of the local copy;
 * reads go to the object store, so a controller that comes back to a node
 * with an old state directory never acts on a stale copy.
 */
export class MirroredVolumeRegistry implements VolumeRegistry {
  constructor(readonly local: VolumeRegistry, readonly remote: VolumeRegistry) {}

  async get(name: string): Promise<ControllerVolumeEntry | null> {
    return await this.remote.get(name);
  }

  async put(entry: ControllerVolumeEntry): Promise<void> {
    await this.remote.put(entry);
    await this.local.put(entry);
  }

  async delete(name: string): Promise<void> {
    await this.remote.delete(name);
    await this.local.delete(name);
  }
}
