import assert from "node:assert/strict";
import { type PartialWriter, writeAll } from "./write_all.ts";

/** Takes at most `chunk` bytes per write, like a short write from the kernel. */
function shortWriter(chunk: number): PartialWriter & { data: number[]; calls: number } {
  const w = {
    data: [] as number[],
    calls: 0,
    write(bytes: Uint8Array): Promise<number> {
      w.calls++;
      const part = bytes.subarray(0, chunk);
      w.data.push(...part);
      return Promise.resolve(part.length);
    },
  };
  return w;
}

Deno.test("writeAll loops over short writes until every byte is written", async () => {
  const bytes = new TextEncoder().encode("a state record that needs several short writes\n");
  const w = shortWriter(7);
  await writeAll(w, bytes);
  assert.deepEqual(new Uint8Array(w.data), bytes);
  assert.equal(w.calls, Math.ceil(bytes.length / 7));
});

Deno.test("writeAll refuses a write that makes no progress", async () => {
  await assert.rejects(
    writeAll({ write: () => Promise.resolve(0) }, new Uint8Array(10)),
    /no progress after 0 of 10 bytes/,
  );
});
