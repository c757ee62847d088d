/**
 * Object-store housekeeping for volumes: deleting a volume's objects and the
 * preflight check of a volume's bucket and credentials.
 *
 * @module
 */

export {
  createS3Client,
  DEFAULT_S3_REGION,
  describeFailure,
  endpointDescription,
  type GuardedS3Location,
  guardedS3Location,
  type ObjectStoreAccess,
  ObjectStoreError,
  PRECONDITION_CODES,
  type S3ClientTimeouts,
} from "./client.ts";
export {
  DELETE_BATCH_SIZE,
  deleteVolumeData,
  type DeleteVolumeDataOptions,
  type ObjectStoreLog,
} from "./delete.ts";
export { PREFLIGHT_OBJECT_NAME, preflightCheck, type PreflightOptions } from "./preflight.ts";
export {
  DEFAULT_RETRY_POLICY,
  describeS3Error,
  type RetryPolicy,
  type S3ErrorInfo,
  withRetries,
} from "./retry.ts";
export { loadS3Sdk, type S3Sdk } from "./sdk.ts";
export { hasVolumeData } from "./exists.ts";
