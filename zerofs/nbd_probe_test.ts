import assert from "node:assert/strict";
import { join } from "node:path";
import { listNbdExports, NBD_FLAG_READ_ONLY, NbdProbeError, probeNbdExport } from "./nbd_probe.ts";

async function rejection(work: () => Promise<unknown>): Promise<NbdProbeError> {
  try {
    await work();
  } catch (e) {
    assert.ok(e instanceof NbdProbeError, `expected NbdProbeError, got ${e}`);
    return e;
  }
  throw new Error("expected a rejection");
}

async function makeTestDir(): Promise<string> {
  const dir = `/run/zerofs-csi/test-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(dir, { recursive: true });
  return dir;
}

/** Start nbdkit in the foreground and wait until its socket accepts. */
async function startNbdkit(
  dir: string,
  args: string[],
): Promise<{ socket: string; stop(): Promise<void> }> {
  const socket = join(dir, "nbd.sock");
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("nbdkit", {
      args: ["-f", "-U", socket, ...args],
      stdout: "null",
      stderr: "null",
    }).spawn();
  } catch (e) {
    throw new Error(`nbdkit is needed for this test: apt-get install -y nbdkit (${e})`);
  }
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* already exited */ }
    await child.status;
  };
  for (let i = 0; i < 500; i++) {
    try {
      (await Deno.connect({ transport: "unix", path: socket })).close();
      return { socket, stop };
    } catch {
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  await stop();
  throw new Error("nbdkit did not listen within 5 s");
}

Deno.test("probeNbdExport reads size and flags from nbdkit's memory plugin", async () => {
  const dir = await makeTestDir();
  const server = await startNbdkit(dir, ["-e", "disk", "memory", "size=12345678"]);
  try {
    const info = await probeNbdExport(server.socket, { exportName: "disk", timeoutMs: 2000 });
    assert.deepEqual(info.sizeBytes, 12345678);
    assert.deepEqual(info.flags & NBD_FLAG_READ_ONLY, 0);
    assert.deepEqual(info.flags & 1, 1, "NBD_FLAG_HAS_FLAGS must be set");
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("probeNbdExport sees read-only exports", async () => {
  const dir = await makeTestDir();
  const server = await startNbdkit(dir, ["-r", "memory", "size=1M"]);
  try {
    const info = await probeNbdExport(server.socket, { exportName: "", timeoutMs: 2000 });
    assert.deepEqual(info.sizeBytes, 1024 * 1024);
    assert.deepEqual(info.flags & NBD_FLAG_READ_ONLY, NBD_FLAG_READ_ONLY);
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("file plugin dir mode: files are exports, unknown name is a clear error", async () => {
  const dir = await makeTestDir();
  const exportsDir = join(dir, "exports");
  await Deno.mkdir(exportsDir);
  await Deno.writeFile(join(exportsDir, "disk"), new Uint8Array(0));
  await Deno.truncate(join(exportsDir, "disk"), 3 * 1024 * 1024);
  const server = await startNbdkit(dir, ["file", `dir=${exportsDir}`]);
  try {
    const info = await probeNbdExport(server.socket, { exportName: "disk", timeoutMs: 2000 });
    assert.deepEqual(info.sizeBytes, 3 * 1024 * 1024);
    // a file created after the server started is served too (the node creates /.nbd/disk late)
    await Deno.writeFile(join(exportsDir, "late"), new Uint8Array(4096));
    assert.deepEqual(
      (await probeNbdExport(server.socket, { exportName: "late", timeoutMs: 2000 })).sizeBytes,
      4096,
    );
    assert.deepEqual((await listNbdExports(server.socket, { timeoutMs: 2000 })).sort(), [
      "disk",
      "late",
    ]);
    const err = await rejection(() =>
      probeNbdExport(server.socket, { exportName: "missing", timeoutMs: 2000 })
    );
    assert.deepEqual(err.message.includes(`no export "missing"`), true, err.message);
    assert.deepEqual(err.kind, "unknown-export");
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("listNbdExports on an empty directory succeeds with no names", async () => {
  const dir = await makeTestDir();
  await Deno.mkdir(join(dir, "exports"));
  const server = await startNbdkit(dir, ["file", `dir=${join(dir, "exports")}`]);
  try {
    assert.deepEqual(await listNbdExports(server.socket, { timeoutMs: 2000 }), []);
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("no server on the socket → connect error naming the path", async () => {
  const dir = await makeTestDir();
  try {
    const socket = join(dir, "absent.sock");
    const err = await rejection(() =>
      probeNbdExport(socket, { exportName: "disk", timeoutMs: 1000 })
    );
    assert.deepEqual(err.kind, "connect");
    assert.deepEqual(err.message.includes(socket), true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a silent server → timeout within the bound", async () => {
  const dir = await makeTestDir();
  const socket = join(dir, "silent.sock");
  const listener = Deno.listen({ transport: "unix", path: socket });
  const accepted: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) accepted.push(conn);
  })();
  try {
    const started = performance.now();
    const err = await rejection(() =>
      probeNbdExport(socket, { exportName: "disk", timeoutMs: 200 })
    );
    assert.deepEqual(err.kind, "timeout");
    const elapsedMs = performance.now() - started;
    assert.deepEqual(elapsedMs < 1000, true, `took ${elapsedMs} ms`);
  } finally {
    listener.close();
    await accepting.catch(() => {});
    for (const conn of accepted) conn.close();
    await Deno.remove(dir, { recursive: true });
  }
});
