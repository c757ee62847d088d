import assert from "node:assert/strict";
import { capacityFits, DEFAULT_CAPACITY_BYTES, resolveCapacity } from "./capacity.ts";
import { Code, CsiError } from "./errors.ts";

const outOfRange = (e: unknown) => e instanceof CsiError && e.code === Code.OUT_OF_RANGE;

Deno.test("resolveCapacity: default, rounding, limits", () => {
  assert.equal(resolveCapacity(undefined), DEFAULT_CAPACITY_BYTES);
  assert.equal(resolveCapacity({ required_bytes: 0, limit_bytes: 0 }), DEFAULT_CAPACITY_BYTES);
  assert.equal(resolveCapacity({ required_bytes: 1 }), 4096);
  assert.equal(resolveCapacity({ required_bytes: 4097 }), 8192);
  assert.equal(resolveCapacity({ limit_bytes: 8192 }), 8192);
  assert.equal(resolveCapacity({ required_bytes: 4096, limit_bytes: 4096 }), 4096);
  assert.throws(() => resolveCapacity({ required_bytes: 10, limit_bytes: 5 }), outOfRange);
  assert.throws(() => resolveCapacity({ required_bytes: 5000, limit_bytes: 6000 }), outOfRange);
  assert.throws(() => resolveCapacity({ limit_bytes: 100 }), outOfRange);
  assert.throws(
    () => resolveCapacity({ required_bytes: -1 }),
    (e: CsiError) => e.code === Code.INVALID_ARGUMENT,
  );
});

Deno.test("capacityFits", () => {
  assert.ok(capacityFits(8192, { required_bytes: 5000 }));
  assert.ok(capacityFits(8192, undefined));
  assert.ok(!capacityFits(8192, { required_bytes: 9000 }));
  assert.ok(!capacityFits(8192, { limit_bytes: 4096 }));
});
