import assert from "node:assert/strict";
import { join } from "node:path";
import { writeFileAtomic } from "./atomic_file.ts";

Deno.test("writeFileAtomic writes a large text whole, 0600", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "big.json");
    const text = "x".repeat(8 * 1024 * 1024 + 3) + "\n";
    await writeFileAtomic(path, text);
    assert.equal(await Deno.readTextFile(path), text);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.deepEqual((await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name), ["big.json"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
