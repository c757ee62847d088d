import assert from "node:assert/strict";
import { LockTimeoutError, NodeLock } from "./lock.ts";
import { sleep } from "./poll.ts";

async function withTempDir(fn: (dir: string) => Promise<void>) {
  await Deno.mkdir("/run/zerofs-csi", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "/run/zerofs-csi", prefix: "test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("NodeLock serializes concurrent holders in one process", async () => {
  await withTempDir(async (dir) => {
    const lock = new NodeLock(`${dir}/devices.lock`);
    let inside = 0;
    let maxInside = 0;
    const order: number[] = [];
    await Promise.all([0, 1, 2, 3, 4].map((i) =>
      lock.run(async () => {
        inside++;
        maxInside = Math.max(maxInside, inside);
        await sleep(10);
        order.push(i);
        inside--;
      })
    ));
    assert.equal(maxInside, 1);
    assert.deepEqual(order, [0, 1, 2, 3, 4]);
  });
});

Deno.test("NodeLock times out while held, and works again after release", async () => {
  await withTempDir(async (dir) => {
    const lock = new NodeLock(`${dir}/devices.lock`, { waitTimeoutMs: 100 });
    const held = await lock.acquire();
    await assert.rejects(lock.acquire(), LockTimeoutError);
    await held.release();
    const again = await lock.acquire();
    await again.release();
  });
});

Deno.test("NodeLock excludes another process holding the file lock until it lets go", async () => {
  await withTempDir(async (dir) => {
    const lockPath = `${dir}/devices.lock`;
    // Holds the lock until its stdin closes: the test decides when it lets go.
    const holder = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `const f = await Deno.open(${JSON.stringify(lockPath)}, {create: true, write: true});
         await f.lock(true); console.log("locked");
         for await (const _ of Deno.stdin.readable) { /* until EOF */ }`,
      ],
      stdin: "piped",
      stdout: "piped",
    }).spawn();
    try {
      const reader = holder.stdout.getReader();
      const { value } = await reader.read();
      assert.match(new TextDecoder().decode(value), /locked/);
      reader.releaseLock();
      let letGo = false;
      const waiting = new NodeLock(lockPath, { waitTimeoutMs: 30_000 }).acquire()
        .then((held) => ({ held, letGo }));
      await assert.rejects(
        new NodeLock(lockPath, { waitTimeoutMs: 150 }).acquire(),
        LockTimeoutError,
        "held by the other process",
      );
      letGo = true;
      await holder.stdin.close();
      assert.equal((await holder.status).code, 0);
      const acquired = await waiting;
      assert.equal(acquired.letGo, true, "acquired only after the other process let go");
      await acquired.held.release();
    } finally {
      try {
        holder.kill("SIGKILL");
      } catch { /* exited */ }
      await holder.stdin.close().catch(() => {});
      await holder.stdout.cancel().catch(() => {});
      await holder.status;
    }
  });
});
