/**
 * Whether a volume has any object under its prefix: how the controller
 * recognises a volume of the original Go driver it has no record of.
 *
 * @module
 */

import {
  createS3Client,
  describeFailure,
  endpointDescription,
  guardedS3Location,
} from "./client.ts";
import type { ObjectStoreAccess } from "./client.ts";
import { describeS3Error } from "./retry.ts";
import { loadS3Sdk } from "./sdk.ts";
import { SettingsError } from "../types.ts";
import { resolveVolumeLocation } from "../settings.ts";

/** True when at least one object exists under `<storageURL>/<volumeId>/` (s3:// only). */
export async function hasVolumeData(
  access: ObjectStoreAccess & { volumeId: string },
): Promise<boolean> {
  if (resolveVolumeLocation(access.settings, access.volumeId).scheme !== "s3") return false;
  const { bucket, prefix, url } = guardedS3Location(access.settings, access.volumeId);
  const { ListObjectsV2Command } = await loadS3Sdk();
  const client = await createS3Client(access);
  try {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, MaxKeys: 1 }),
    );
    return (page.KeyCount ?? page.Contents?.length ?? 0) > 0;
  } catch (e) {
    throw new SettingsError(
      describeFailure(`listing ${url}`, describeS3Error(e), endpointDescription(access.settings)),
      "precondition",
    );
  } finally {
    client.destroy();
  }
}
