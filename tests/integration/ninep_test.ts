/**
 * The 9P client, the device file and the volume record against a real 9P2000.L
 * server (diod, Debian package `diod`) exporting a temporary directory.
 * Outcomes are checked on the exported directory itself.
 */

import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { startDiod } from "../fixtures/diod.ts";
import { freezeProcess } from "../helpers/frozen_process.ts";
import { ensureDeviceFile, readDeviceFileSize } from "../../zerofs/device_file.ts";
import {
  readVolumeRecord,
  type VolumeRecord,
  VolumeRecordError,
  writeVolumeRecord,
} from "../../zerofs/volume_record.ts";
import {
  isNotFound,
  NinepClient,
  NinepConnectionError,
  ninepHandshake,
  NinepTimeoutError,
} from "../../zerofs/ninep/mod.ts";

const TIMEOUT_MS = 5_000;
const GiB = 1024 ** 3;

interface Env {
  exportDir: string;
  socketPath: string;
  diodPid: number;
  directSocketPath: string;
  /** Resolves once the next request has reached diod's socket. */
  nextRequestForwarded(): Promise<void>;
  connect(opts?: { timeoutMs?: number }): Promise<NinepClient>;
}

/** A fresh diod over a fresh export directory for one test. */
async function withDiod(run: (env: Env) => Promise<void>): Promise<void> {
  await Deno.mkdir("/run/zerofs-csi", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "/run/zerofs-csi", prefix: "test-" });
  const exportDir = `${dir}/export`;
  await Deno.mkdir(exportDir);
  const socketPath = `${dir}/9p.sock`;
  const diod = await startDiod({ exportDir, socketPath });
  const clients: NinepClient[] = [];
  try {
    await run({
      exportDir,
      socketPath,
      diodPid: diod.pid,
      directSocketPath: diod.directSocketPath,
      nextRequestForwarded: diod.nextRequestForwarded,
      async connect(opts = {}) {
        const client = await NinepClient.connect(socketPath, {
          timeoutMs: opts.timeoutMs ?? TIMEOUT_MS,
        });
        clients.push(client);
        return client;
      },
    });
  } finally {
    for (const client of clients) await client.close();
    try {
      Deno.kill(diod.pid, "SIGCONT");
    } catch { /* already gone */ }
    await diod.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("ensureDeviceFile creates /.nbd/disk sparse with the exact size", async () => {
  await withDiod(async ({ exportDir, connect }) => {
    const client = await connect();
    deepStrictEqual(await readDeviceFileSize(client, "disk"), null);
    const result = await ensureDeviceFile(client, { name: "disk", sizeBytes: 10 * GiB });
    deepStrictEqual(result, { sizeBytes: 10 * GiB, created: true, grown: false });
    const dirInfo = await Deno.stat(`${exportDir}/.nbd`);
    ok(dirInfo.isDirectory);
    strictEqual(dirInfo.mode! & 0o777, 0o755);
    const info = await Deno.stat(`${exportDir}/.nbd/disk`);
    ok(info.isFile);
    strictEqual(info.size, 10 * GiB);
    strictEqual(info.uid, 0);
    ok(info.blocks! <= 8, `device file must be sparse, has ${info.blocks} blocks`);
    strictEqual(await readDeviceFileSize(client, "disk"), 10 * GiB);
  });
});

Deno.test("ensureDeviceFile grows a smaller file and never shrinks a larger one", async () => {
  await withDiod(async ({ exportDir, connect }) => {
    const client = await connect();
    const path = `${exportDir}/.nbd/disk`;
    await ensureDeviceFile(client, { name: "disk", sizeBytes: GiB });
    // Data at the start must survive growth.
    const file = await Deno.open(path, { write: true });
    await file.write(new TextEncoder().encode("superblock"));
    file.close();

    deepStrictEqual(await ensureDeviceFile(client, { name: "disk", sizeBytes: GiB }), {
      sizeBytes: GiB,
      created: false,
      grown: false,
    });
    deepStrictEqual(await ensureDeviceFile(client, { name: "disk", sizeBytes: 3 * GiB }), {
      sizeBytes: 3 * GiB,
      created: false,
      grown: true,
    });
    strictEqual((await Deno.stat(path)).size, 3 * GiB);
    ok((await Deno.stat(path)).blocks! <= 16, "growth must not write zeros");

    deepStrictEqual(await ensureDeviceFile(client, { name: "disk", sizeBytes: 2 * GiB }), {
      sizeBytes: 3 * GiB,
      created: false,
      grown: false,
    });
    strictEqual((await Deno.stat(path)).size, 3 * GiB);
    const head = new Uint8Array(10);
    using reader = await Deno.open(path);
    strictEqual(await reader.read(head), 10);
    strictEqual(new TextDecoder().decode(head), "superblock");
  });
});

Deno.test("ensureDeviceFile uses an existing /.nbd and refuses a non-file device", async () => {
  await withDiod(async ({ exportDir, connect }) => {
    await Deno.mkdir(`${exportDir}/.nbd/disk`, { recursive: true });
    const client = await connect();
    await rejects(
      ensureDeviceFile(client, { name: "disk", sizeBytes: GiB }),
      /not a regular file/,
    );
    ok((await Deno.stat(`${exportDir}/.nbd/disk`)).isDirectory);
  });
});

Deno.test("volume record: absent → null, atomic write, round trip, overwrite", async () => {
  await withDiod(async ({ exportDir, connect }) => {
    const client = await connect();
    strictEqual(await readVolumeRecord(client), null);
    const record: VolumeRecord = {
      schema: 2,
      driverVersion: "0.1.0",
      fsType: "xfs",
      formatted: false,
      createdAt: new Date().toISOString(),
      zerofs: { formattedBy: "0.16.2", servedBy: "0.16.2" },
    };
    await writeVolumeRecord(client, record);
    deepStrictEqual(await readVolumeRecord(client), record);
    deepStrictEqual(JSON.parse(await Deno.readTextFile(`${exportDir}/.zerofs-csi.json`)), record);

    const formatted = { ...record, formatted: true, formattedAt: new Date().toISOString() };
    await writeVolumeRecord(client, formatted);
    deepStrictEqual(await readVolumeRecord(client), formatted);
    const names = [...Deno.readDirSync(exportDir)].map((e) => e.name).sort();
    deepStrictEqual(names, [".zerofs-csi.json"], "no temp file may be left behind");
    strictEqual((await Deno.stat(`${exportDir}/.zerofs-csi.json`)).mode! & 0o777, 0o600);

    // A stale temp file from a crashed writer does not block the next write.
    await Deno.writeTextFile(`${exportDir}/.zerofs-csi.json.tmp`, "partial");
    await writeVolumeRecord(client, record);
    deepStrictEqual(await readVolumeRecord(client), record);
  });
});

Deno.test("volume record: corrupt content or a directory throws, never reads as absent", async () => {
  await withDiod(async ({ exportDir, connect }) => {
    const client = await connect();
    const path = `${exportDir}/.zerofs-csi.json`;
    await Deno.writeTextFile(path, '{"schema": 1, "fsType": "ext4", "formatt');
    await rejects(readVolumeRecord(client), VolumeRecordError);
    await Deno.writeTextFile(path, JSON.stringify({ schema: 7 }));
    await rejects(readVolumeRecord(client), /schema 7/);
    await Deno.remove(path);
    await Deno.mkdir(path);
    await rejects(readVolumeRecord(client), (e: Error) => !isNotFound(e));
  });
});

Deno.test("many requests in flight on one client and a second client at the same time", async () => {
  await withDiod(async ({ exportDir, connect }) => {
    const first = await connect();
    const second = await connect();
    await ensureDeviceFile(first, { name: "disk", sizeBytes: GiB });
    const sizes = await Promise.all(
      Array.from({ length: 40 }, (_, i) => readDeviceFileSize(i % 2 ? first : second, "disk")),
    );
    ok(sizes.every((size) => size === GiB));

    const big = crypto.getRandomValues(new Uint8Array(60_000));
    const payload = new Uint8Array(300_000).map((_, i) => big[i % big.length] ^ (i >> 16));
    await Promise.all([
      first.writeFile("/a.bin", payload, { mode: 0o600 }),
      second.writeFile("/b.bin", payload, { mode: 0o600 }),
    ]);
    deepStrictEqual(await Deno.readFile(`${exportDir}/a.bin`), payload);
    deepStrictEqual(await second.readFile("/a.bin", { maxBytes: 1 << 20 }), payload);
    ok(first.msizeBytes < payload.length, "the payload must need several messages");

    await first.close();
    strictEqual(await readDeviceFileSize(second, "disk"), GiB);
  });
});

Deno.test("server killed with a request pending: the request rejects at once", async () => {
  await withDiod(async ({ diodPid, connect, nextRequestForwarded }) => {
    const client = await connect({ timeoutMs: 30_000 });
    await freezeProcess(diodPid);
    const forwarded = nextRequestForwarded();
    let settled = false;
    const pending = client.stat("/").finally(() => settled = true);
    // In flight: the request sits in the stopped diod's socket, unanswered.
    await forwarded;
    strictEqual(settled, false, "a stopped server cannot have answered");
    Deno.kill(diodPid, "SIGKILL");
    // The connection's end rejects it, not the 30 s timeout (a NinepTimeoutError).
    await rejects(
      pending,
      (e) => e instanceof NinepConnectionError && !(e instanceof NinepTimeoutError),
    );
    await rejects(client.stat("/"), NinepConnectionError, "a dead client keeps failing");
  });
});

Deno.test("a hung server: the request times out within its bound", async () => {
  await withDiod(async ({ diodPid, connect }) => {
    const client = await connect({ timeoutMs: 400 });
    await freezeProcess(diodPid);
    const started = Date.now();
    await rejects(client.stat("/"), NinepTimeoutError);
    const elapsed = Date.now() - started;
    ok(elapsed >= 390 && elapsed < 2000, `took ${elapsed} ms`);
    Deno.kill(diodPid, "SIGCONT");
  });
});

Deno.test("handshake succeeds on a live diod, through the aname proxy and directly", async () => {
  await withDiod(async ({ socketPath, directSocketPath, exportDir }) => {
    await ninepHandshake(socketPath, { timeoutMs: TIMEOUT_MS });
    await ninepHandshake(directSocketPath, { timeoutMs: TIMEOUT_MS, aname: exportDir });
  });
});

Deno.test("measure: ensureDeviceFile on an existing file, connect included", async () => {
  await withDiod(async ({ socketPath, directSocketPath, exportDir }) => {
    const setup = await NinepClient.connect(socketPath, { timeoutMs: TIMEOUT_MS });
    await ensureDeviceFile(setup, { name: "disk", sizeBytes: GiB });
    await setup.close();
    const rounds = 50;
    for (
      const [label, path, aname] of [
        ["via aname proxy", socketPath, ""],
        ["direct diod", directSocketPath, exportDir],
      ]
    ) {
      const started = performance.now();
      for (let i = 0; i < rounds; i++) {
        const client = await NinepClient.connect(path, { timeoutMs: TIMEOUT_MS, aname });
        try {
          const result = await ensureDeviceFile(client, { name: "disk", sizeBytes: GiB });
          strictEqual(result.created || result.grown, false);
        } finally {
          await client.close();
        }
      }
      const msEach = (performance.now() - started) / rounds;
      // A number to read, not to assert: the machine is shared.
      console.log(`ensureDeviceFile on an existing file (${label}): ${msEach.toFixed(2)} ms`);
    }
  });
});
