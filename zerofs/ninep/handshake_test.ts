import { ok, rejects } from "node:assert/strict";
import { NinepConnectionError, NinepProtocolError, NinepTimeoutError } from "./mod.ts";
import { ninepHandshake } from "./handshake.ts";
import { encodeFrame } from "./wire.ts";
import { ByteWriter } from "./wire.ts";

/** A unix-socket peer that answers each connection with `reply` (or nothing). */
async function withPeer(
  reply: Uint8Array | null,
  run: (socketPath: string) => Promise<void>,
): Promise<void> {
  await Deno.mkdir("/run/zerofs-csi", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "/run/zerofs-csi", prefix: "test-" });
  const socketPath = `${dir}/peer.sock`;
  const listener = Deno.listen({ transport: "unix", path: socketPath });
  const conns: Deno.Conn[] = [];
  const serving = (async () => {
    for await (const conn of listener) {
      conns.push(conn);
      if (reply) await conn.write(reply).catch(() => {});
    }
  })().catch(() => {});
  try {
    await run(socketPath);
  } finally {
    listener.close();
    for (const conn of conns) {
      try {
        conn.close();
      } catch { /* closed by the client */ }
    }
    await serving;
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("handshake on a missing socket fails at once, saying so", async () => {
  const started = Date.now();
  await rejects(
    ninepHandshake("/run/zerofs-csi/no-such-dir/9p.sock", { timeoutMs: 5000 }),
    (e: Error) => e instanceof NinepConnectionError && /does not exist/.test(e.message),
  );
  ok(Date.now() - started < 1000);
});

Deno.test("handshake with an NBD server is a protocol error, not a hang", async () => {
  const greeting = new TextEncoder().encode("NBDMAGICIHAVEOPT\0\x03");
  await withPeer(greeting, async (socketPath) => {
    await rejects(ninepHandshake(socketPath, { timeoutMs: 5000 }), NinepProtocolError);
  });
});

Deno.test("handshake with a silent peer times out within the bound", async () => {
  await withPeer(null, async (socketPath) => {
    const started = Date.now();
    await rejects(ninepHandshake(socketPath, { timeoutMs: 300 }), NinepTimeoutError);
    const elapsed = Date.now() - started;
    ok(elapsed >= 290 && elapsed < 2000, `took ${elapsed} ms`);
  });
});

Deno.test("handshake with a peer that answers another dialect names it", async () => {
  const body = new ByteWriter().u32(8192).str("unknown").bytes();
  const rversion = encodeFrame({ type: 101, tag: 0xffff, body });
  await withPeer(rversion, async (socketPath) => {
    await rejects(
      ninepHandshake(socketPath, { timeoutMs: 5000 }),
      (e: Error) => e instanceof NinepConnectionError && /"unknown"/.test(e.message),
    );
  });
});

Deno.test("handshake on a stale socket file (nothing listening) is refused at once", async () => {
  await Deno.mkdir("/run/zerofs-csi", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "/run/zerofs-csi", prefix: "test-" });
  try {
    const socketPath = `${dir}/stale.sock`;
    // Deno unlinks a listener's socket on close; a hard link keeps a stale one behind.
    const listener = Deno.listen({ transport: "unix", path: `${dir}/live.sock` });
    await Deno.link(`${dir}/live.sock`, socketPath);
    listener.close();
    ok((await Deno.lstat(socketPath)).isSocket, "the stale socket file must remain");
    await rejects(
      ninepHandshake(socketPath, { timeoutMs: 5000 }),
      (e: Error) => e instanceof NinepConnectionError && /refused/.test(e.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
