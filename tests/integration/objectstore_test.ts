/**
 * Object-store cleanup and preflight against a real S3 server (MinIO, see
 * tests/fixtures/s3.ts), which checks access key IDs and SigV4 signatures:
 * "wrong credentials" is tested both as an unknown key and as a known key
 * with the wrong secret. Also checks that the server has the conditional
 * writes ZeroFS relies on, so the node tests run ZeroFS against a server
 * that can really serve it.
 */

import { equal, ok, rejects } from "node:assert/strict";
import { createServer } from "node:net";
import {
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { type LocalS3, startS3 } from "../fixtures/s3.ts";
import { listKeys, putObjects, rawClient, volumeKeys } from "../helpers/controller_s3.ts";
import {
  deleteVolumeData,
  ObjectStoreError,
  preflightCheck,
} from "../../zerofs/objectstore/mod.ts";
import { resolveSettings, type VolumeSettings } from "../../zerofs/settings.ts";
import type { SecretValues } from "../../zerofs/secrets.ts";
import { SettingsError } from "../../zerofs/types.ts";

const BUCKET = "volumes";

function settingsFor(s3: LocalS3, storageURL = `s3://${BUCKET}/base`): VolumeSettings {
  return resolveSettings({
    parameters: { storageURL, awsEndpoint: s3.endpoint, awsAllowHTTP: "true" },
  });
}

function secretsFor(s3: LocalS3): SecretValues {
  return { awsAccessKeyId: s3.accessKeyId, awsSecretAccessKey: s3.secretAccessKey };
}

async function withS3(fn: (s3: LocalS3, client: S3Client) => Promise<void>): Promise<void> {
  const s3 = await startS3();
  const client = rawClient(s3);
  try {
    await s3.createBucket(BUCKET);
    await fn(s3, client);
  } finally {
    client.destroy();
    await s3.stop();
  }
}

/** A loopback port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

Deno.test("deleteVolumeData removes 2,500 objects and nothing else, then is idempotent", async () => {
  await withS3(async (s3, client) => {
    const target = volumeKeys("base/pvc-1/", 2500);
    const neighbours = [
      "base/pvc-10/wal/000000.sst", // sibling whose ID extends the target's
      "base/pvc-1.old/x", // sibling with a dotted suffix
      "other/pvc-1/wal/000000.sst", // same volume ID outside the base prefix
      "pvc-1/wal/000000.sst", // same volume ID at the bucket root
    ];
    await putObjects(client, [...target, ...neighbours]);
    equal((await listKeys(client, "base/pvc-1/")).length, 2500);

    const started = performance.now();
    const first = await deleteVolumeData({
      settings: settingsFor(s3),
      secrets: secretsFor(s3),
      volumeId: "pvc-1",
    });
    const elapsedMs = Math.round(performance.now() - started);
    console.log(`deleted 2,500 objects from MinIO in ${elapsedMs} ms`);

    equal(first.deletedObjects, 2500);
    equal((await listKeys(client, "base/pvc-1/")).length, 0);
    for (const key of neighbours) equal((await listKeys(client, key)).includes(key), true, key);

    const second = await deleteVolumeData({
      settings: settingsFor(s3),
      secrets: secretsFor(s3),
      volumeId: "pvc-1",
    });
    equal(second.deletedObjects, 0);
  });
});

Deno.test("deleteVolumeData aborted after the first batch resumes and finishes", async () => {
  await withS3(async (s3, client) => {
    await putObjects(client, volumeKeys("base/pvc-2/", 2500));
    const controller = new AbortController();
    const progress: number[] = [];
    await rejects(
      deleteVolumeData({
        settings: settingsFor(s3),
        secrets: secretsFor(s3),
        volumeId: "pvc-2",
        signal: controller.signal,
        onBatchDeleted: ({ deletedObjects }) => {
          progress.push(deletedObjects);
          controller.abort();
        },
      }),
      (e: unknown) =>
        e instanceof ObjectStoreError && e.code === "AbortError" && /resume/.test(e.message),
    );
    equal(progress.length, 1);
    equal((await listKeys(client, "base/pvc-2/")).length, 1500);

    const resumed = await deleteVolumeData({
      settings: settingsFor(s3),
      secrets: secretsFor(s3),
      volumeId: "pvc-2",
    });
    equal(resumed.deletedObjects, 1500);
    equal((await listKeys(client, "base/pvc-2/")).length, 0);
  });
});

Deno.test("deleteVolumeData with an unknown access key fails with the S3 code and deletes nothing", async () => {
  await withS3(async (s3, client) => {
    await putObjects(client, volumeKeys("base/pvc-3/", 3));
    const secrets = { awsAccessKeyId: "WRONGKEY", awsSecretAccessKey: "wrong-secret-value" };
    await rejects(
      deleteVolumeData({ settings: settingsFor(s3), secrets, volumeId: "pvc-3" }),
      (e: unknown) => {
        ok(e instanceof SettingsError, String(e));
        equal(e.kind, "precondition");
        ok(e.message.includes("InvalidAccessKeyId"), e.message);
        ok(e.message.includes(s3.endpoint), e.message);
        ok(!e.message.includes("wrong-secret-value"), "secret leaked into the error");
        return true;
      },
    );
    equal((await listKeys(client, "base/pvc-3/")).length, 3);
  });
});

Deno.test("deleteVolumeData with the right key but a wrong secret fails with SignatureDoesNotMatch", async () => {
  await withS3(async (s3, client) => {
    await putObjects(client, volumeKeys("base/pvc-3s/", 3));
    const wrongSecret = `${s3.secretAccessKey.slice(0, -4)}zzzz`;
    const secrets = { awsAccessKeyId: s3.accessKeyId, awsSecretAccessKey: wrongSecret };
    await rejects(
      deleteVolumeData({ settings: settingsFor(s3), secrets, volumeId: "pvc-3s" }),
      (e: unknown) => {
        ok(e instanceof SettingsError, String(e));
        equal(e.kind, "precondition");
        ok(e.message.includes("SignatureDoesNotMatch"), e.message);
        ok(!e.message.includes(wrongSecret), "secret leaked into the error");
        return true;
      },
    );
    equal((await listKeys(client, "base/pvc-3s/")).length, 3);
  });
});

Deno.test("deleteVolumeData guards: bad volume IDs and non-s3 URLs are refused before any call", async () => {
  await withS3(async (s3, client) => {
    await putObjects(client, ["base/x", "base/pvc-4/y"]);
    for (const volumeId of ["", "../base", "PVC-4", "pvc-4/", "a..b", "-pvc"]) {
      await rejects(
        deleteVolumeData({ settings: settingsFor(s3), secrets: secretsFor(s3), volumeId }),
        SettingsError,
        volumeId,
      );
    }
    const gcs = { ...settingsFor(s3), storageURL: "gs://volumes/base" };
    await rejects(
      deleteVolumeData({ settings: gcs, secrets: secretsFor(s3), volumeId: "pvc-4" }),
      SettingsError,
    );
    const http = { ...settingsFor(s3), awsAllowHTTP: false };
    await rejects(
      deleteVolumeData({ settings: http, secrets: secretsFor(s3), volumeId: "pvc-4" }),
      /awsAllowHTTP/,
    );
    equal((await listKeys(client, "base/")).length, 2);
  });
});

Deno.test("deleteVolumeData with a bucket-root storageURL deletes only <volumeId>/", async () => {
  await withS3(async (s3, client) => {
    await putObjects(client, ["pvc-5/a", "pvc-5/b", "pvc-50/a", "base/pvc-5/a"]);
    const settings = settingsFor(s3, `s3://${BUCKET}`);
    const out = await deleteVolumeData({ settings, secrets: secretsFor(s3), volumeId: "pvc-5" });
    equal(out.deletedObjects, 2);
    equal((await listKeys(client, "")).sort().join(","), "base/pvc-5/a,pvc-50/a");
  });
});

// Kept apart from the 2,500-object test: MinIO stores objects as files, and
// an object named like a prefix ("base/pvc-9") hides every key under
// "base/pvc-9/" from listings (real S3 lists both).
Deno.test("deleteVolumeData leaves an object named like the volume prefix without the slash", async () => {
  await withS3(async (s3, client) => {
    await putObjects(client, ["base/pvc-9", "base/pvc-9.old/x"]);
    const out = await deleteVolumeData({
      settings: settingsFor(s3),
      secrets: secretsFor(s3),
      volumeId: "pvc-9",
    });
    equal(out.deletedObjects, 0);
    equal((await listKeys(client, "base/")).sort().join(","), "base/pvc-9,base/pvc-9.old/x");
  });
});

Deno.test("preflightCheck succeeds and leaves no probe object behind", async () => {
  await withS3(async (s3, client) => {
    await preflightCheck({ settings: settingsFor(s3), secrets: secretsFor(s3), volumeId: "pvc-6" });
    equal((await listKeys(client, "base/pvc-6/")).length, 0);
  });
});

Deno.test("preflightCheck failures: missing bucket, unknown key, unreachable endpoint", async () => {
  await withS3(async (s3) => {
    const expectPrecondition = (code: RegExp, endpoint: string) => (e: unknown) => {
      ok(e instanceof SettingsError, String(e));
      equal(e.kind, "precondition");
      ok(code.test(e.message), e.message);
      ok(e.message.includes(endpoint), e.message);
      ok(!e.message.includes(s3.secretAccessKey + "-x"), "secret leaked");
      return true;
    };
    await rejects(
      preflightCheck({
        settings: settingsFor(s3, "s3://no-such-bucket/base"),
        secrets: secretsFor(s3),
        volumeId: "pvc-7",
      }),
      expectPrecondition(/NoSuchBucket/, s3.endpoint),
    );
    await rejects(
      preflightCheck({
        settings: settingsFor(s3),
        secrets: { awsAccessKeyId: "WRONGKEY", awsSecretAccessKey: s3.secretAccessKey + "-x" },
        volumeId: "pvc-7",
      }),
      expectPrecondition(/InvalidAccessKeyId/, s3.endpoint),
    );
    await rejects(
      preflightCheck({
        settings: settingsFor(s3),
        secrets: { awsAccessKeyId: s3.accessKeyId, awsSecretAccessKey: s3.secretAccessKey + "-x" },
        volumeId: "pvc-7",
      }),
      expectPrecondition(/SignatureDoesNotMatch/, s3.endpoint),
    );
    const port = await closedPort();
    const unreachable = resolveSettings({
      parameters: {
        storageURL: `s3://${BUCKET}/base`,
        awsEndpoint: `http://127.0.0.1:${port}`,
        awsAllowHTTP: "true",
      },
    });
    const started = performance.now();
    await rejects(
      preflightCheck({ settings: unreachable, secrets: secretsFor(s3), volumeId: "pvc-7" }),
      expectPrecondition(/ECONNREFUSED|connect/i, `http://127.0.0.1:${port}`),
    );
    ok(performance.now() - started < 10_000, "unreachable endpoint took too long to fail");
  });
});

/** The HTTP status of a failed SDK call (412 = precondition failed). */
function httpStatusOf(e: unknown): number | undefined {
  return (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

Deno.test("the S3 test server supports conditional writes ZeroFS needs", async () => {
  // ZeroFS's storage engine (SlateDB, through the object_store crate) creates
  // manifests with put-if-absent (If-None-Match: *) and replaces them with
  // compare-and-swap (If-Match: <etag>); a server that ignores either
  // silently loses fencing between two writers.
  await withS3(async (_s3, client) => {
    const put = (Body: string, cond: { IfNoneMatch?: string; IfMatch?: string }) =>
      client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "manifest/000001", Body, ...cond }));
    const body = async () =>
      await (await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: "manifest/000001" })))
        .Body!.transformToString();

    const first = await put("one", { IfNoneMatch: "*" });
    ok(first.ETag, "put-if-absent returned no ETag");
    await rejects(put("two", { IfNoneMatch: "*" }), (e: unknown) => {
      equal(httpStatusOf(e), 412, String(e));
      return true;
    });
    equal(await body(), "one", "a refused put-if-absent changed the object");

    await rejects(put("three", { IfMatch: '"0123456789abcdef0123456789abcdef"' }), (e: unknown) => {
      equal(httpStatusOf(e), 412, String(e));
      return true;
    });
    equal(await body(), "one", "a refused If-Match put changed the object");
    const swapped = await put("four", { IfMatch: first.ETag });
    equal(await body(), "four");
    await rejects(put("five", { IfMatch: first.ETag }), (e: unknown) => {
      equal(httpStatusOf(e), 412, "a stale ETag must not win");
      return true;
    });
    equal(
      (await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "manifest/000001" }))).ETag,
      swapped.ETag,
    );

    // Racing creators: exactly one wins.
    const racers = await Promise.allSettled(
      Array.from(
        { length: 8 },
        (_, i) =>
          client.send(
            new PutObjectCommand({
              Bucket: BUCKET,
              Key: "manifest/000002",
              Body: `racer-${i}`,
              IfNoneMatch: "*",
            }),
          ),
      ),
    );
    equal(racers.filter((r) => r.status === "fulfilled").length, 1, "racing put-if-absent");
    for (const r of racers) if (r.status === "rejected") equal(httpStatusOf(r.reason), 412);
  });
});
