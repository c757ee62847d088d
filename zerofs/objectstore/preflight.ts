/**
 * Preflight (CreateVolume with `preflight: "true"`): prove the bucket is
 * reachable and the credentials can list, write and delete under the
 * volume's prefix before any ZeroFS starts on it.
 *
 * @module
 */

import type { S3Client } from "@aws-sdk/client-s3";
import { loadS3Sdk } from "./sdk.ts";
import { SettingsError } from "../types.ts";
import {
  createS3Client,
  describeFailure,
  endpointDescription,
  guardedS3Location,
  type ObjectStoreAccess,
  type S3ClientTimeouts,
} from "./client.ts";
import { describeS3Error, type RetryPolicy, withRetries } from "./retry.ts";

/** Name of the probe object written (and deleted) under the volume prefix. */
export const PREFLIGHT_OBJECT_NAME = ".zerofs-csi-preflight";

/** Few quick attempts: preflight answers a user waiting on CreateVolume. */
const PREFLIGHT_RETRY: RetryPolicy = { maxAttempts: 2, baseDelayMs: 200, maxDelayMs: 500 };
const PREFLIGHT_TIMEOUTS: S3ClientTimeouts = { connectTimeoutMs: 3_000, requestTimeoutMs: 10_000 };

/** Inputs of {@linkcode preflightCheck}. */
export interface PreflightOptions extends ObjectStoreAccess {
  volumeId: string;
  timeouts?: S3ClientTimeouts;
}

async function step(
  what: { operation: string; target: string; endpoint: string },
  send: () => Promise<unknown>,
): Promise<void> {
  try {
    await withRetries(send, { policy: PREFLIGHT_RETRY });
  } catch (e) {
    const info = describeS3Error(e);
    throw new SettingsError(
      `object-store preflight failed for ${what.target}: ${
        describeFailure(what.operation, info, what.endpoint)
      }; ` +
        `check storageURL, awsEndpoint, awsAllowHTTP and the credentials Secret`,
      "precondition",
    );
  }
}

async function probe(
  client: S3Client,
  bucket: string,
  prefix: string,
  describe: (op: string) => {
    operation: string;
    target: string;
    endpoint: string;
  },
): Promise<void> {
  const key = `${prefix}${PREFLIGHT_OBJECT_NAME}`;
  const { DeleteObjectCommand, ListObjectsV2Command, PutObjectCommand } = await loadS3Sdk();
  await step(
    describe("ListObjectsV2"),
    () => client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, MaxKeys: 1 })),
  );
  await step(
    describe("PutObject"),
    () =>
      client.send(
        new PutObjectCommand({ Bucket: bucket, Key: key, Body: "zerofs-csi preflight\n" }),
      ),
  );
  await step(
    describe("DeleteObject"),
    () => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key })),
  );
}

/**
 * Check that the volume's bucket is reachable and writable. Throws
 * {@linkcode SettingsError} kind `"precondition"` carrying the failing
 * operation, the S3 error code and the endpoint — never the credentials.
 *
 * @example
 * ```ts
 * await preflightCheck({ settings, secrets, volumeId: "pvc-1" });
 * ```
 */
export async function preflightCheck(opts: PreflightOptions): Promise<void> {
  const { bucket, prefix, url } = guardedS3Location(opts.settings, opts.volumeId);
  const endpoint = endpointDescription(opts.settings);
  const client = await createS3Client(opts, opts.timeouts ?? PREFLIGHT_TIMEOUTS);
  try {
    await probe(client, bucket, prefix, (operation) => ({ operation, target: url, endpoint }));
  } finally {
    client.destroy();
  }
}
