import assert from "node:assert/strict";
import { LockTimeoutError, NodeLock } from "./lock.ts";

async function withTempDir(fn: (dir: string) => Promise<void>) {
  await Deno.mkdir("/run/zerofs-csi", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "/run/zerofs-csi", prefix: "test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("NodeLock lets concurrent holders in one process in one at a time, in arrival order", async () => {
  await withTempDir(async (dir) => {
    const lockPath = `${dir}/devices.lock`;
    const lock = new NodeLock(lockPath);
    const holders = [0, 1, 2, 3, 4];
    const entered = holders.map(() => Promise.withResolvers<void>());
    const leave = holders.map(() => Promise.withResolvers<void>());
    const inside = new Set<number>();
    const order: number[] = [];
    const all = Promise.all(holders.map((i) =>
      lock.run(async () => {
        inside.add(i);
        order.push(i);
        entered[i].resolve();
        await leave[i].promise;
        inside.delete(i);
      })
    ));
    for (const i of holders) {
      await entered[i].promise;
      // Held across processes too: another open file description cannot take it.
      await assert.rejects(
        new NodeLock(lockPath, { waitTimeoutMs: 0 }).acquire(),
        LockTimeoutError,
      );
      assert.deepEqual([...inside], [i], `only holder ${i} is inside`);
      leave[i].resolve();
    }
    await all;
    assert.deepEqual(order, holders);
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
