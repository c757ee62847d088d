/**
 * Read a test S3 server's bucket directly: what ZeroFS wrote, and what
 * DeleteVolume left.
 *
 * @module
 */

import type { S3Access } from "../fixtures/s3.ts";
import { listKeys, rawClient } from "./controller_s3.ts";

/** Every key under `prefix` in `bucket`, with a client of its own. */
export async function listBucketKeys(
  s3: S3Access,
  bucket: string,
  prefix = "",
): Promise<string[]> {
  const client = rawClient(s3);
  try {
    return await listKeys(client, prefix, bucket);
  } finally {
    client.destroy();
  }
}
