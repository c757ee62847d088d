import assert from "node:assert/strict";
import { join } from "node:path";
import { checkReady, waitUntilReady } from "./readiness.ts";
import { ZeroFsNotReadyError } from "./types.ts";

// Real handshakes against a real server are in tests/integration/process_runner_test.ts.

async function withDir(work: (dir: string) => Promise<void>): Promise<void> {
  const dir = `/run/zerofs-csi/test-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(dir, { recursive: true });
  try {
    await work(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const target = (dir: string) => ({
  volumeId: "pvc-r",
  ninepSocket: join(dir, "9p.sock"),
  nbdSocket: join(dir, "nbd.sock"),
  exportName: "",
});

Deno.test("checkReady names the socket whose handshake failed", async () => {
  await withDir(async (dir) => {
    const check = await checkReady(target(dir), { timeoutMs: 500 });
    assert.equal(check.ready, false);
    assert.match(check.reason ?? "", /9P handshake on .*9p\.sock/);
  });
});

Deno.test("a socket file that accepts but never speaks is not ready", async () => {
  await withDir(async (dir) => {
    const listener = Deno.listen({ transport: "unix", path: join(dir, "9p.sock") });
    const conns: Deno.Conn[] = [];
    const accepting = (async () => {
      for await (const c of listener) conns.push(c);
    })().catch(() => {});
    try {
      const check = await checkReady(target(dir), { timeoutMs: 200 });
      assert.equal(check.ready, false);
    } finally {
      listener.close();
      await accepting;
      conns.forEach((c) => c.close());
    }
  });
});

Deno.test("waitUntilReady gives up in bounded time with the log tail", async () => {
  await withDir(async (dir) => {
    const t = performance.now();
    const err = await waitUntilReady(target(dir), {
      timeoutMs: 300,
      logTail: () => Promise.resolve("line one\nline two"),
    }).then(() => null, (e) => e);
    assert.ok(err instanceof ZeroFsNotReadyError);
    assert.equal(err.logTail, "line one\nline two");
    assert.match(err.message, /pvc-r.*not ready within 300 ms/);
    assert.ok(performance.now() - t < 1500);
  });
});

Deno.test("waitUntilReady fails at once when the process is gone", async () => {
  await withDir(async (dir) => {
    const t = performance.now();
    const err = await waitUntilReady(target(dir), {
      timeoutMs: 10_000,
      isAlive: () => Promise.resolve(false),
      logTail: () => Promise.resolve("✗ Error: boom"),
    }).then(() => null, (e) => e);
    assert.ok(err instanceof ZeroFsNotReadyError);
    assert.match(err.message, /exited while starting/);
    assert.ok(performance.now() - t < 500);
  });
});
