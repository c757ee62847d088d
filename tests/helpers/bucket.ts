/**
 * Read a test S3 server's bucket directly: what ZeroFS wrote, and what
 * DeleteVolume left.
 *
 * @module
 */

import { ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import type { LocalS3 } from "../fixtures/s3.ts";

/** Every key under `prefix` in `bucket` (all pages). */
export async function listBucketKeys(
  s3: LocalS3,
  bucket: string,
  prefix = "",
): Promise<string[]> {
  const client = new S3Client({
    endpoint: s3.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
  try {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await client.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
      );
      keys.push(...(page.Contents ?? []).map((o) => o.Key!));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return keys;
  } finally {
    client.destroy();
  }
}
