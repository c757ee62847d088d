import assert from "node:assert/strict";
import { join } from "node:path";
import { CorruptRecordError } from "../zerofs/mod.ts";
import { Code, toCsiError } from "./errors.ts";
import { ANY_NODE, FileKnownNodes, registerNode } from "./known_nodes.ts";

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = `/run/zerofs-csi/test-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(dir, { recursive: true });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("node registry: a node exists once its agent registered, under any node ID", async () => {
  await withDir(async (dir) => {
    const nodes = new FileKnownNodes(join(dir, "nodes"));
    assert.equal(await nodes.exists("node-a"), false, "no directory yet");
    for (const id of ["node-a", "Node_B/with slash", "..", "x".repeat(200)]) {
      const path = await registerNode(join(dir, "nodes"), id);
      assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
      assert.equal(await nodes.exists(id), true, id);
    }
    assert.equal(await nodes.exists("node-c"), false);
    await assert.rejects(registerNode(join(dir, "nodes"), "é".repeat(100)), /too long/);
    assert.equal(await ANY_NODE.exists("anything"), true);
  });
});

Deno.test("node registry: a corrupt or foreign record is an error, never absent", async () => {
  await withDir(async (dir) => {
    const nodes = new FileKnownNodes(dir);
    const registeredAt = "2026-01-01T00:00:00.000Z";
    for (
      const text of [
        "{not json",
        JSON.stringify({ schema: 2, nodeId: "n" }),
        JSON.stringify({ schema: 1, nodeId: "m", driver: "other.csi", registeredAt }),
      ]
    ) {
      await Deno.writeTextFile(join(dir, "n.json"), text);
      await assert.rejects(
        nodes.exists("n"),
        (e: Error) =>
          e instanceof CorruptRecordError && e.where === join(dir, "n.json") &&
          toCsiError(e).code === Code.INTERNAL,
      );
    }
    await Deno.writeTextFile(
      join(dir, "n.json"),
      JSON.stringify({ schema: 1, nodeId: "n", driver: "other.csi", registeredAt }),
    );
    assert.equal(await nodes.exists("n"), false, "another driver's record");
  });
});
