/**
 * The real controller against the S3 test server (MinIO): a settings file pointing at it, raw S3
 * helpers to populate and list a bucket, and a CSI status assertion.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createServer } from "node:net";
import { ListObjectsV2Command, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { status } from "@grpc/grpc-js";
import type { LocalS3, S3Access } from "../fixtures/s3.ts";
import { CsiCallError } from "./csi_client.ts";
import { type RunningDriver, startDriver } from "./driver.ts";

/** Bucket every scenario uses. */
export const BUCKET = "volumes";

/** A mount capability for CreateVolume. */
export const MOUNT_CAP = {
  mount: { fs_type: "ext4", mount_flags: [] },
  access_mode: { mode: "SINGLE_NODE_WRITER" },
};

/**
 * Write `<dir>/settings.toml`: defaults at `s3://volumes/base` on `s3`, and a
 * ConfigMap `other` at `s3://volumes/other`. Returns the path.
 */
export async function writeSettingsFile(dir: string, s3: LocalS3): Promise<string> {
  const path = `${dir}/settings.toml`;
  await Deno.writeTextFile(
    path,
    [
      `storageURL = "s3://${BUCKET}/base"`,
      `awsEndpoint = "${s3.endpoint}"`,
      `awsAllowHTTP = true`,
      ``,
      `[configMaps.other]`,
      `storageURL = "s3://${BUCKET}/other"`,
      ``,
    ].join("\n"),
  );
  return path;
}

/** Start the controller on `dir` with the settings file and the S3 server's credentials in its environment. */
export function startS3Controller(
  o: { dir: string; stateDir: string; settingsFile: string; s3: LocalS3; extraArgs?: string[] },
): Promise<RunningDriver> {
  return startDriver({
    mode: "controller",
    args: [
      "--endpoint",
      `unix://${o.dir}/csi-${crypto.randomUUID().slice(0, 6)}.sock`,
      "--state-dir",
      o.stateDir,
      "--config-source",
      "file",
      "--settings-file",
      o.settingsFile,
      "--delete-timeout-ms",
      "180000",
      ...(o.extraArgs ?? []),
    ],
    env: { AWS_ACCESS_KEY_ID: o.s3.accessKeyId, AWS_SECRET_ACCESS_KEY: o.s3.secretAccessKey },
  });
}

/** A client with the S3 server's credentials. */
export function rawClient(s3: S3Access): S3Client {
  return new S3Client({
    endpoint: s3.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
}

/** Put each key (body = the key), 32 at a time. */
export async function putObjects(client: S3Client, keys: string[]): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < keys.length) {
      const key = keys[next++];
      await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: key }));
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
}

/** Every key under `prefix` in `bucket` (default {@linkcode BUCKET}), all pages. */
export async function listKeys(
  client: S3Client,
  prefix: string,
  bucket = BUCKET,
): Promise<string[]> {
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
}

/** `count` keys that look like ZeroFS's under `prefix` (which ends in "/"). */
export function volumeKeys(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}wal/${String(i).padStart(6, "0")}.sst`);
}

/** Await `p`, assert it failed with `code`, and that its details match `re`. */
export async function expectCode(
  p: Promise<unknown>,
  code: status,
  re?: RegExp,
): Promise<CsiCallError> {
  const err = await p.then(
    () => assert.fail(`expected ${status[code]}, got success`),
    (e) => e,
  );
  assert.ok(err instanceof CsiCallError, String(err));
  assert.equal(status[err.code], status[code], err.message);
  if (re) assert.match(err.details, re);
  return err;
}

/** A loopback port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
