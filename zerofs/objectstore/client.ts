/**
 * The S3 client for one volume's settings, the guarded location of its
 * objects, and errors that name the endpoint and the S3 code — never the
 * credentials.
 *
 * @module
 */

import type { S3Client } from "@aws-sdk/client-s3";
import { loadS3Sdk } from "./sdk.ts";
import { resolveVolumeLocation, type VolumeSettings } from "../settings.ts";
import type { SecretValues } from "../secrets.ts";
import { SettingsError } from "../types.ts";
import type { S3ErrorInfo } from "./retry.ts";

/** Region used when the settings name none (what ZeroFS's object store assumes too). */
export const DEFAULT_S3_REGION = "us-east-1";
/** Bound on establishing a TCP connection, so an unreachable endpoint fails in seconds. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 3_000;
/** Bound on one request once connected. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/** What every object-store call needs. */
export interface ObjectStoreAccess {
  settings: VolumeSettings;
  secrets: SecretValues;
}

/** Timeouts for {@linkcode createS3Client}. */
export interface S3ClientTimeouts {
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
}

/** Same pattern as the CSI volume-ID check: the ID becomes part of an object prefix. */
const VOLUME_ID = /^[a-z0-9]([a-z0-9.-]{0,126}[a-z0-9])?$/;

/** Throws {@linkcode SettingsError} when `volumeId` is not a valid volume ID. */
export function checkVolumeIdForPrefix(volumeId: string): void {
  if (!VOLUME_ID.test(volumeId) || volumeId.includes("..")) {
    throw new SettingsError(
      `refusing object-store access for volume ID ${JSON.stringify(volumeId.slice(0, 140))}: ` +
        `it must be 1-128 lowercase letters, digits, '-' or '.', start and end with a letter or digit, and contain no '..'`,
    );
  }
}

/** An S3 bucket and the key prefix of one volume, checked so a delete under it can only touch that volume. */
export interface GuardedS3Location {
  bucket: string;
  /** Ends with `<volumeId>/`; never empty, never the bucket root. */
  prefix: string;
  /** `s3://bucket/prefix` for messages. */
  url: string;
}

/**
 * The volume's S3 location, or a {@linkcode SettingsError} when the settings do
 * not name an `s3://` URL or the prefix fails the guards.
 */
export function guardedS3Location(settings: VolumeSettings, volumeId: string): GuardedS3Location {
  checkVolumeIdForPrefix(volumeId);
  const location = resolveVolumeLocation(settings, volumeId);
  if (location.scheme !== "s3") {
    throw new SettingsError(
      `cannot reach the objects of volume "${volumeId}" at ${location.url}: only s3:// storage URLs are supported here`,
    );
  }
  const { bucket, prefix } = location;
  const safe = bucket !== "" && prefix !== "" && prefix !== "/" && !prefix.startsWith("/") &&
    !prefix.includes("//") && prefix.endsWith(`${volumeId}/`) &&
    (prefix === `${volumeId}/` || prefix.endsWith(`/${volumeId}/`));
  if (!safe) {
    throw new SettingsError(
      `refusing to touch objects of volume "${volumeId}": prefix ${
        JSON.stringify(prefix)
      } in bucket ` +
        `${
          JSON.stringify(bucket)
        } is not a volume prefix ending in "${volumeId}/"; check storageURL`,
    );
  }
  return { bucket, prefix, url: `s3://${bucket}/${prefix}` };
}

/** The endpoint as messages name it (never with credentials: settings reject userinfo). */
export function endpointDescription(settings: VolumeSettings): string {
  return settings.awsEndpoint ??
    `AWS S3 (${settings.awsDefaultRegion ?? DEFAULT_S3_REGION})`;
}

/**
 * An S3 client for these settings: path-style addressing when an endpoint is
 * set, bounded timeouts, no SDK retries (callers use `withRetries`), and the
 * secret's credentials when present (else the SDK's default chain).
 */
export async function createS3Client(
  access: ObjectStoreAccess,
  timeouts: S3ClientTimeouts = {},
): Promise<S3Client> {
  const { S3Client } = await loadS3Sdk();
  const { settings, secrets } = access;
  if (settings.awsEndpoint?.startsWith("http://") && !settings.awsAllowHTTP) {
    throw new SettingsError(
      `awsEndpoint ${settings.awsEndpoint} is plain HTTP but awsAllowHTTP is not "true"; ` +
        `use https:// or set awsAllowHTTP: "true"`,
    );
  }
  const credentials = secrets.awsAccessKeyId && secrets.awsSecretAccessKey
    ? {
      accessKeyId: secrets.awsAccessKeyId,
      secretAccessKey: secrets.awsSecretAccessKey,
      sessionToken: secrets.awsSessionToken,
    }
    : undefined;
  return new S3Client({
    region: settings.awsDefaultRegion ?? DEFAULT_S3_REGION,
    ...(settings.awsEndpoint ? { endpoint: settings.awsEndpoint, forcePathStyle: true } : {}),
    ...(credentials ? { credentials } : {}),
    maxAttempts: 1,
    requestHandler: {
      connectionTimeout: timeouts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      requestTimeout: timeouts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
      // Without this the SDK only warns when requestTimeout passes and keeps waiting.
      throwOnRequestTimeout: true,
    },
  });
}

/** Render an S3 failure for a message: operation, code, HTTP status, endpoint, the server's text. */
export function describeFailure(operation: string, info: S3ErrorInfo, endpoint: string): string {
  const status = info.httpStatus ? ` (HTTP ${info.httpStatus})` : "";
  return `${operation} failed with ${info.code}${status} at ${endpoint}: ${info.message}`;
}

/** Codes that mean the configuration or the credentials are wrong, not that S3 is unwell. */
export const PRECONDITION_CODES: ReadonlySet<string> = new Set([
  "NoSuchBucket",
  "AccessDenied",
  "InvalidAccessKeyId",
  "SignatureDoesNotMatch",
  "InvalidToken",
  "ExpiredToken",
  "AllAccessDisabled",
  "AuthorizationHeaderMalformed",
  "PermanentRedirect",
  "CredentialsProviderError",
]);

/** An object-store call failed for a reason other than configuration (→ INTERNAL or UNAVAILABLE). */
export class ObjectStoreError extends Error {
  override readonly name = "ObjectStoreError";
  constructor(message: string, readonly code: string, readonly httpStatus?: number) {
    super(message);
  }
}
