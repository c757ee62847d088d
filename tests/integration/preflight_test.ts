/**
 * CreateVolume's object-store pre-flight through the real controller against
 * a real S3 server (MinIO), which checks access key IDs and signatures:
 * "denied" is both an unknown access key ID (InvalidAccessKeyId) and a known
 * one with the wrong secret (SignatureDoesNotMatch).
 */

import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import { startS3 } from "../fixtures/s3.ts";
import { makeTestDir } from "../helpers/driver.ts";
import {
  BUCKET,
  closedPort,
  expectCode,
  listKeys,
  MOUNT_CAP,
  rawClient,
  startS3Controller,
  writeSettingsFile,
} from "../helpers/controller_s3.ts";

const WRONG_SECRET = "wrong-secret-Pf7q2";

Deno.test("CreateVolume pre-flight against MinIO", async (t) => {
  const dir = await makeTestDir();
  const s3 = await startS3();
  const client = rawClient(s3);
  try {
    await s3.createBucket(BUCKET);
    const settingsFile = await writeSettingsFile(dir, s3);
    const driver = await startS3Controller({
      dir,
      stateDir: `${dir}/state`,
      settingsFile,
      s3,
      extraArgs: ["--volume-records", "local"],
    });
    const c = driver.client.controller;
    const create = (name: string, parameters: Record<string, string>, secrets = {}) =>
      c.CreateVolume({ name, volume_capabilities: [MOUNT_CAP], parameters, secrets });
    const notRecorded = (name: string) =>
      expectCode(
        c.ValidateVolumeCapabilities({ volume_id: name, volume_capabilities: [MOUNT_CAP] }),
        status.NOT_FOUND,
      );
    try {
      await t.step("passes on a good bucket and leaves no probe object", async () => {
        const res = await create("pvc-ok", {});
        assert.equal(res.volume.volume_id, "pvc-ok");
        assert.deepEqual(await listKeys(client, "base/pvc-ok/"), []);
      });

      await t.step(
        "missing bucket → FAILED_PRECONDITION with NoSuchBucket and the endpoint",
        async () => {
          const err = await expectCode(
            create("pvc-nobucket", { storageURL: "s3://no-such-bucket/base" }),
            status.FAILED_PRECONDITION,
            /NoSuchBucket/,
          );
          assert.ok(err.details.includes(s3.endpoint), err.details);
          await notRecorded("pvc-nobucket");
        },
      );

      await t.step("denied credentials → FAILED_PRECONDITION, secret not echoed", async () => {
        const err = await expectCode(
          create("pvc-denied", {}, {
            AWS_ACCESS_KEY_ID: "WRONGKEY",
            AWS_SECRET_ACCESS_KEY: WRONG_SECRET,
          }),
          status.FAILED_PRECONDITION,
          /InvalidAccessKeyId/,
        );
        assert.ok(err.details.includes(s3.endpoint), err.details);
        assert.ok(!err.details.includes(WRONG_SECRET));
        await notRecorded("pvc-denied");
        const badSignature = await expectCode(
          create("pvc-badsig", {}, {
            AWS_ACCESS_KEY_ID: s3.accessKeyId,
            AWS_SECRET_ACCESS_KEY: WRONG_SECRET,
          }),
          status.FAILED_PRECONDITION,
          /SignatureDoesNotMatch/,
        );
        assert.ok(badSignature.details.includes(s3.endpoint), badSignature.details);
        assert.ok(!badSignature.details.includes(WRONG_SECRET));
        await notRecorded("pvc-badsig");
      });

      const port = await closedPort();
      const unreachable = { awsEndpoint: `http://127.0.0.1:${port}` };

      await t.step("unreachable endpoint → FAILED_PRECONDITION within seconds", async () => {
        const started = performance.now();
        const err = await expectCode(
          create("pvc-unreachable", unreachable),
          status.FAILED_PRECONDITION,
          /ECONNREFUSED|connect/i,
        );
        assert.ok(err.details.includes(`127.0.0.1:${port}`), err.details);
        assert.ok(performance.now() - started < 15_000, "took too long");
        await notRecorded("pvc-unreachable");
      });

      await t.step('preflight: "false" skips the check', async () => {
        const res = await create("pvc-nocheck", { ...unreachable, preflight: "false" });
        assert.equal(res.volume.volume_id, "pvc-nocheck");
        assert.equal(res.volume.volume_context.preflight, "false");
      });
    } finally {
      await driver.stop();
      assert.ok(!driver.output().includes(WRONG_SECRET), "secret in the log");
    }
  } finally {
    client.destroy();
    await s3.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
