/**
 * Delete every object of one volume (DeleteVolume).
 *
 * Lists under `<prefix>/<volumeId>/` and deletes in batches of 1000. It keeps
 * no state: after a crash or an abort, calling it again lists what is left and
 * finishes. A volume with no objects is success with 0 deleted.
 *
 * @module
 */

import type { S3Client } from "@aws-sdk/client-s3";
import { loadS3Sdk } from "./sdk.ts";
import { resolveVolumeLocation } from "../settings.ts";
import { SettingsError } from "../types.ts";
import {
  createS3Client,
  describeFailure,
  endpointDescription,
  type GuardedS3Location,
  guardedS3Location,
  type ObjectStoreAccess,
  ObjectStoreError,
  PRECONDITION_CODES,
  type S3ClientTimeouts,
} from "./client.ts";
import { describeS3Error, type RetryPolicy, type S3ErrorInfo, withRetries } from "./retry.ts";

/** S3's DeleteObjects limit. */
export const DELETE_BATCH_SIZE = 1000;
/**
 * Full list-and-delete passes before giving up: a pass that deleted something
 * is followed by one that must find nothing. Objects that keep appearing mean
 * a writer is still running on the volume.
 */
const MAX_PASSES = 5;

/** Structured log line; gets keys, counts and codes, never secrets. */
export type ObjectStoreLog = (message: string, fields?: Record<string, unknown>) => void;

/** Inputs of {@linkcode deleteVolumeData}. */
export interface DeleteVolumeDataOptions extends ObjectStoreAccess {
  volumeId: string;
  log?: ObjectStoreLog;
  /** Stops between (and during) batches; what is deleted stays deleted, a new call resumes. */
  signal?: AbortSignal;
  /** Called after each batch with the running total. */
  onBatchDeleted?: (progress: { deletedObjects: number }) => void;
  retry?: RetryPolicy;
  timeouts?: S3ClientTimeouts;
}

interface DeleteContext {
  client: S3Client;
  location: GuardedS3Location;
  endpoint: string;
  opts: DeleteVolumeDataOptions;
  deletedObjects: number;
}

/** Turn an SDK error into a SettingsError (configuration/credentials) or an ObjectStoreError. */
function failure(operation: string, e: unknown, ctx: DeleteContext): Error {
  if (e instanceof SettingsError || e instanceof ObjectStoreError) return e;
  const info = describeS3Error(e);
  if (info.code === "AbortError" || ctx.opts.signal?.aborted) {
    return new ObjectStoreError(
      `deleting the objects of volume "${ctx.opts.volumeId}" was aborted after ${ctx.deletedObjects} objects; call again to resume`,
      "AbortError",
    );
  }
  const what = `deleting the objects of volume "${ctx.opts.volumeId}" under ${ctx.location.url}: ` +
    describeFailure(operation, info, ctx.endpoint);
  return PRECONDITION_CODES.has(info.code)
    ? new SettingsError(
      `${what}; check storageURL, awsEndpoint and the credentials Secret`,
      "precondition",
    )
    : new ObjectStoreError(`${what}; it is safe to retry`, info.code, info.httpStatus);
}

function retryOptions(ctx: DeleteContext, operation: string) {
  return {
    policy: ctx.opts.retry,
    signal: ctx.opts.signal,
    onRetry: (info: S3ErrorInfo, attempt: number, delayMs: number) =>
      ctx.opts.log?.("object store call will be retried", {
        volumeId: ctx.opts.volumeId,
        operation,
        code: info.code,
        attempt,
        delayMs,
      }),
  };
}

/** Run one S3 operation with retries; failures become SettingsError/ObjectStoreError naming it. */
async function call<T>(ctx: DeleteContext, operation: string, send: () => Promise<T>): Promise<T> {
  try {
    return await withRetries(send, retryOptions(ctx, operation));
  } catch (e) {
    throw failure(operation, e, ctx);
  }
}

async function listPage(ctx: DeleteContext, token: string | undefined) {
  const { bucket, prefix } = ctx.location;
  const { ListObjectsV2Command } = await loadS3Sdk();
  const page = await call(ctx, "ListObjectsV2", () =>
    ctx.client.send(
      new ListObjectsV2Command({
        Bucket: bucket,
        Prefix: prefix,
        MaxKeys: DELETE_BATCH_SIZE,
        ContinuationToken: token,
      }),
      { abortSignal: ctx.opts.signal },
    ));
  const keys = (page.Contents ?? []).map((o) => o.Key ?? "");
  const stray = keys.find((k) => !k.startsWith(prefix) || k === prefix.slice(0, -1));
  if (stray !== undefined) {
    // Never delete what the server returned outside the prefix (a broken Prefix filter).
    throw new ObjectStoreError(
      `refusing to delete: listing ${ctx.location.url} returned key ${
        JSON.stringify(stray)
      } outside the prefix`,
      "UnexpectedKey",
    );
  }
  return { keys, next: page.IsTruncated ? page.NextContinuationToken : undefined };
}

async function deleteBatch(ctx: DeleteContext, keys: string[]): Promise<void> {
  const { DeleteObjectsCommand } = await loadS3Sdk();
  await call(ctx, "DeleteObjects", async () => {
    const out = await ctx.client.send(
      new DeleteObjectsCommand({
        Bucket: ctx.location.bucket,
        Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true },
      }),
      { abortSignal: ctx.opts.signal },
    );
    const first = out.Errors?.[0];
    if (first) {
      // Rethrown as an S3-shaped error so withRetries retries SlowDown/InternalError per key.
      throw Object.assign(
        new Error(`${out.Errors!.length} keys not deleted, first ${first.Key}: ${first.Message}`),
        {
          name: first.Code ?? "DeleteObjectsError",
        },
      );
    }
  });
  ctx.deletedObjects += keys.length;
  ctx.opts.onBatchDeleted?.({ deletedObjects: ctx.deletedObjects });
}

/** One pass over the prefix; returns how many objects it deleted. */
async function deletePass(ctx: DeleteContext): Promise<number> {
  let deleted = 0;
  let token: string | undefined;
  do {
    ctx.opts.signal?.throwIfAborted();
    const page = await listPage(ctx, token);
    if (page.keys.length > 0) await deleteBatch(ctx, page.keys);
    deleted += page.keys.length;
    token = page.next;
  } while (token);
  return deleted;
}

/**
 * Delete every object under the volume's prefix. Idempotent and resumable.
 * Throws {@linkcode SettingsError} (never deleting anything) when the volume
 * ID or prefix fails the guards or the credentials/bucket are wrong, and
 * {@linkcode ObjectStoreError} for other failures (safe to retry).
 *
 * @example
 * ```ts
 * const { deletedObjects } = await deleteVolumeData({ settings, secrets, volumeId: "pvc-1" });
 * ```
 */
export async function deleteVolumeData(
  opts: DeleteVolumeDataOptions,
): Promise<{ deletedObjects: number }> {
  if (resolveVolumeLocation(opts.settings, opts.volumeId).scheme === "memory") {
    return { deletedObjects: 0 };
  }
  const location = guardedS3Location(opts.settings, opts.volumeId);
  const client = await createS3Client(opts, opts.timeouts);
  const ctx: DeleteContext = {
    client,
    location,
    endpoint: endpointDescription(opts.settings),
    opts,
    deletedObjects: 0,
  };
  const started = performance.now();
  try {
    for (let pass = 1; pass <= MAX_PASSES; pass++) {
      if (await deletePass(ctx) === 0) {
        opts.log?.("volume objects deleted", {
          volumeId: opts.volumeId,
          location: location.url,
          deletedObjects: ctx.deletedObjects,
          durationMs: Math.round(performance.now() - started),
        });
        return { deletedObjects: ctx.deletedObjects };
      }
    }
    throw new ObjectStoreError(
      `objects keep appearing under ${location.url} after ${MAX_PASSES} delete passes; ` +
        `is a ZeroFS instance still writing to volume "${opts.volumeId}"? Stop it and retry`,
      "StillWriting",
    );
  } catch (e) {
    throw failure("deleting", e, ctx);
  } finally {
    client.destroy();
  }
}
