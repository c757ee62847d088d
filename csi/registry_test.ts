import assert from "node:assert/strict";
import { CorruptRecordError } from "../zerofs/mod.ts";
import { Code, toCsiError } from "./errors.ts";
import { type ControllerVolumeEntry, FileVolumeRegistry } from "./registry.ts";

async function withRegistry(fn: (r: FileVolumeRegistry) => Promise<void>) {
  const dir = `/run/zerofs-csi/test-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(dir, { recursive: true });
  try {
    const r = new FileVolumeRegistry(dir);
    await r.init();
    await fn(r);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const entry: ControllerVolumeEntry = {
  name: "pvc-r",
  capacityBytes: 4096,
  volumeContext: { fsType: "ext4", capacityBytes: "4096" },
  parameters: {},
  createdAt: "2026-01-01T00:00:00.000Z",
};

Deno.test("registry: put/get/delete round trip, 0600, schema versioned", async () => {
  await withRegistry(async (r) => {
    assert.equal(await r.get("pvc-r"), null);
    await r.put(entry);
    assert.deepEqual(await r.get("pvc-r"), entry);
    const path = `${r.dir}/pvc-r.json`;
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.equal(JSON.parse(await Deno.readTextFile(path)).schema, 1);
    await r.delete("pvc-r");
    await r.delete("pvc-r");
    assert.equal(await r.get("pvc-r"), null);
  });
});

Deno.test("registry: a corrupt or foreign-schema record is an error, never absent", async () => {
  await withRegistry(async (r) => {
    const path = `${r.dir}/pvc-r.json`;
    for (
      const text of [
        "{not json",
        JSON.stringify({ ...entry, schema: 2 }),
        JSON.stringify({ schema: 1 }),
      ]
    ) {
      await Deno.writeTextFile(path, text);
      await assert.rejects(
        r.get("pvc-r"),
        (e: Error) =>
          e instanceof CorruptRecordError && e.where === path &&
          toCsiError(e).code === Code.INTERNAL,
      );
    }
  });
});
