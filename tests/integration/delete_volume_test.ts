/**
 * DeleteVolume through the real controller (main.ts under -P=controller)
 * against a real S3 server (MinIO): the objects really go, neighbours stay,
 * publish records block it, retain keeps the bytes, records survive a
 * controller move, and volumes without a record (original driver) are found
 * at the default location.
 *
 * One server for the whole file; its steps share the bucket.
 */

import assert from "node:assert/strict";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { status } from "@grpc/grpc-js";
import { startS3 } from "../fixtures/s3.ts";
import { makeTestDir, type RunningDriver } from "../helpers/driver.ts";
import {
  BUCKET,
  expectCode,
  listKeys,
  MOUNT_CAP,
  putObjects,
  rawClient,
  startS3Controller,
  volumeKeys,
  writeSettingsFile,
} from "../helpers/controller_s3.ts";

const LONG_CALL_MS = 600_000;
const WRONG_SECRET = "not-the-secret-Zq9x7";

Deno.test("DeleteVolume against MinIO", async (t) => {
  const dir = await makeTestDir();
  const s3 = await startS3();
  const client = rawClient(s3);
  const drivers: RunningDriver[] = [];
  try {
    await s3.createBucket(BUCKET);
    const settingsFile = await writeSettingsFile(dir, s3);
    const start = async (stateDir: string) => {
      const d = await startS3Controller({ dir, stateDir, settingsFile, s3 });
      drivers.push(d);
      return d;
    };
    const a = await start(`${dir}/state-a`);
    const c = a.client.controller;
    const create = (name: string, parameters: Record<string, string> = {}) =>
      c.CreateVolume({ name, volume_capabilities: [MOUNT_CAP], parameters });

    await t.step(
      "2,500 objects: refused while published, deleted after unpublish, siblings untouched",
      async () => {
        await create("pvc-1");
        const record = `base/.zerofs-csi-volumes/pvc-1.json`;
        assert.deepEqual(
          await listKeys(client, record),
          [record],
          "record mirrored to the object store",
        );
        const neighbours = [
          // No "base/pvc-1" object here: on MinIO it would hide every key under
          // "base/pvc-1/" from listings (objectstore_test.ts covers that case).
          "base/pvc-10/wal/000000.sst",
          "base/pvc-1.old/x",
          "other/pvc-1/wal/000000.sst",
          "pvc-1/wal/000000.sst",
        ];
        await putObjects(client, [...volumeKeys("base/pvc-1/", 2500), ...neighbours]);
        await c.ControllerPublishVolume({
          volume_id: "pvc-1",
          node_id: "node-a",
          volume_capability: MOUNT_CAP,
          readonly: false,
        });
        await expectCode(
          c.DeleteVolume({ volume_id: "pvc-1" }),
          status.FAILED_PRECONDITION,
          /still published to node\(s\) node-a/,
        );
        assert.equal((await listKeys(client, "base/pvc-1/")).length, 2500);
        await c.ControllerUnpublishVolume({ volume_id: "pvc-1", node_id: "node-a" });

        const started = performance.now();
        assert.deepEqual(await c.DeleteVolume({ volume_id: "pvc-1" }, LONG_CALL_MS), {});
        const ms = Math.round(performance.now() - started);
        console.log(`DeleteVolume of 2,500 objects on MinIO took ${ms} ms`);

        assert.deepEqual(await listKeys(client, "base/pvc-1/"), []);
        for (const key of neighbours) assert.ok((await listKeys(client, key)).includes(key), key);
        assert.deepEqual(await listKeys(client, record), [], "record removed");
        assert.deepEqual(await c.DeleteVolume({ volume_id: "pvc-1" }), {}, "second delete");
        assert.match(a.output(), /"msg":"volume objects deleted".*"deletedObjects":2500/);
      },
    );

    await t.step("retain keeps the objects, also after the controller moves", async () => {
      await create("pvc-keep", { deletePolicy: "retain" });
      await putObjects(client, volumeKeys("base/pvc-keep/", 3));
      assert.deepEqual(await c.DeleteVolume({ volume_id: "pvc-keep" }), {});
      assert.equal((await listKeys(client, "base/pvc-keep/")).length, 3);
      assert.match(a.output(), /"msg":"volume deleted, objects retained".*pvc-keep/);
      await expectCode(create("pvc-keep", { deletePolicy: "retain" }), status.ALREADY_EXISTS);
      // A controller with an empty state directory reads the tombstone from
      // the object store: it must not fall back to the default location.
      const b = await start(`${dir}/state-b`);
      assert.deepEqual(await b.client.controller.DeleteVolume({ volume_id: "pvc-keep" }), {});
      assert.equal((await listKeys(client, "base/pvc-keep/")).length, 3);
    });

    await t.step(
      "a volume created on another ConfigMap is deleted by a moved controller",
      async () => {
        await create("pvc-cm", { configMapName: "other" });
        await putObjects(client, volumeKeys("other/pvc-cm/", 5));
        const moved = await start(`${dir}/state-c`);
        assert.deepEqual(await moved.client.controller.DeleteVolume({ volume_id: "pvc-cm" }), {});
        assert.deepEqual(await listKeys(client, "other/pvc-cm/"), []);
        assert.deepEqual(await listKeys(client, "base/.zerofs-csi-volumes/pvc-cm.json"), []);
      },
    );

    await t.step("a volume without a record is deleted from the default storageURL", async () => {
      await putObjects(client, [...volumeKeys("base/pvc-legacy/", 4), "base/pvc-legacy2/x"]);
      assert.deepEqual(await c.DeleteVolume({ volume_id: "pvc-legacy" }), {});
      assert.deepEqual(await listKeys(client, "base/pvc-legacy/"), []);
      assert.deepEqual(await listKeys(client, "base/pvc-legacy2/"), ["base/pvc-legacy2/x"]);
      assert.deepEqual(await c.DeleteVolume({ volume_id: "pvc-never-existed" }), {});
    });

    await t.step("a volume of the original driver is adopted at its first attach", async () => {
      const publish = (volume_id: string) =>
        c.ControllerPublishVolume({
          volume_id,
          node_id: "node-old",
          volume_capability: MOUNT_CAP,
          readonly: false,
        });
      await expectCode(publish("pvc-nothing-here"), status.NOT_FOUND);
      await putObjects(client, volumeKeys("base/pvc-old/", 3));
      // Its PV carries no pin: the publish context brings the one made at adoption.
      assert.deepEqual(await publish("pvc-old"), {
        publish_context: {
          readonly: "false",
          "zerofs.csi/storageURL": `s3://${BUCKET}/base`,
          "zerofs.csi/awsEndpoint": s3.endpoint,
          "zerofs.csi/awsDefaultRegion": "",
          "zerofs.csi/awsAllowHTTP": "true",
          "zerofs.csi/awsCredentialsSecretName": "",
          "zerofs.csi/encryptionPasswordSecretName": "",
        },
      });
      await a.waitForOutput(/adopted a volume without a record.*pvc-old/);
      await a.waitForOutput(/volume pinned to its location.*pvc-old/);
      await expectCode(c.DeleteVolume({ volume_id: "pvc-old" }), status.FAILED_PRECONDITION);
      assert.equal((await listKeys(client, "base/pvc-old/")).length, 3);
      await c.ControllerUnpublishVolume({ volume_id: "pvc-old", node_id: "node-old" });
      assert.deepEqual(await c.DeleteVolume({ volume_id: "pvc-old" }), {});
      assert.deepEqual(await listKeys(client, "base/pvc-old/"), []);
    });

    await t.step(
      "wrong credentials: FAILED_PRECONDITION naming the code and endpoint, never the secret",
      async () => {
        await create("pvc-cred");
        await putObjects(client, volumeKeys("base/pvc-cred/", 2));
        const err = await expectCode(
          c.DeleteVolume({
            volume_id: "pvc-cred",
            secrets: { AWS_ACCESS_KEY_ID: "WRONGKEY", AWS_SECRET_ACCESS_KEY: WRONG_SECRET },
          }),
          status.FAILED_PRECONDITION,
          /InvalidAccessKeyId/,
        );
        assert.ok(err.details.includes(s3.endpoint), err.details);
        assert.ok(!err.details.includes(WRONG_SECRET), "secret in the error");
        assert.equal((await listKeys(client, "base/pvc-cred/")).length, 2, "nothing deleted");
        // The record is kept, so the retry with the right credentials (env) finishes the job.
        assert.deepEqual(await c.DeleteVolume({ volume_id: "pvc-cred" }), {});
        assert.deepEqual(await listKeys(client, "base/pvc-cred/"), []);
      },
    );

    await t.step("the log never carries a secret", () => {
      for (const d of drivers) {
        const out = d.output();
        assert.ok(!out.includes(WRONG_SECRET), "wrong secret in the log");
        assert.ok(!out.includes(`"${s3.secretAccessKey}"`), "env secret in the log");
      }
    });

    await t.step("the record is plain settings: no secret values", async () => {
      await create("pvc-rec", { deletePolicy: "retain" });
      const out = await client.send(
        new GetObjectCommand({ Bucket: BUCKET, Key: "base/.zerofs-csi-volumes/pvc-rec.json" }),
      );
      const rec = JSON.parse(await out.Body!.transformToString());
      assert.equal(rec.schema, 1);
      assert.deepEqual(rec.parameters, { deletePolicy: "retain" });
      assert.deepEqual(rec.publishedNodes, []);
      assert.ok(!JSON.stringify(rec).includes(s3.secretAccessKey));
    });
  } finally {
    for (const d of drivers) await d.stop();
    client.destroy();
    await s3.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
