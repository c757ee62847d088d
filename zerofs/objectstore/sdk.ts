/**
 * The AWS SDK, loaded on first use: only the controller talks to the object
 * store, and the node agent should not carry the SDK's ~30 MiB.
 *
 * @module
 */

/** The `@aws-sdk/client-s3` module. */
export type S3Sdk = typeof import("@aws-sdk/client-s3");

let loading: Promise<S3Sdk> | undefined;

/** Import the SDK once; later calls share the same module. */
export function loadS3Sdk(): Promise<S3Sdk> {
  return loading ??= import("@aws-sdk/client-s3");
}
