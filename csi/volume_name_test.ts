import assert from "node:assert/strict";
import { Code, CsiError } from "./errors.ts";
import { parseVolumeId } from "./validate.ts";
import { parseVolumeName, volumeIdForName } from "./volume_name.ts";

Deno.test("a name that is a valid volume ID is its own ID (PV names, original driver)", () => {
  for (const name of ["pvc-0b9e5c1a-1234-4c7e-9d1f-6f2a8b3c4d5e", "a", "v1.2", "a".repeat(128)]) {
    assert.equal(volumeIdForName(name), name);
  }
});

Deno.test("any other name gets a valid, deterministic ID that keeps case apart", () => {
  const names = [
    "sanity-CreateVolume-51C5E1F1-2B4D6E8A", // csi-sanity's shape
    "A",
    "a_b",
    "a/../b",
    "-x-",
    "..",
    "é",
    "日本語",
    "Ünïcödé and spaces",
    "X".repeat(128),
    "é".repeat(64), // 128 bytes
  ];
  const ids = new Set<string>();
  for (const name of names) {
    const id = volumeIdForName(name);
    assert.equal(parseVolumeId(id), id, JSON.stringify(name));
    assert.equal(volumeIdForName(name), id, "deterministic");
    ids.add(id);
  }
  assert.equal(ids.size, names.length, "no two names share an ID");
  assert.notEqual(volumeIdForName("A"), volumeIdForName("a"));
  assert.match(
    volumeIdForName("sanity-CreateVolume-51C5E1F1-2B4D6E8A"),
    /^sanity-createvolume-51c5e1f1-2b4d6e8a-[0-9a-f]{16}$/,
  );
  assert.match(volumeIdForName("日本語"), /^[0-9a-f]{16}$/);
  assert.equal(volumeIdForName("X".repeat(128)).length, 128);
});

Deno.test("parseVolumeName: required, at most 128 bytes, no NUL", () => {
  const invalid = (re: RegExp) => (e: unknown) =>
    e instanceof CsiError && e.code === Code.INVALID_ARGUMENT && re.test(e.message);
  assert.equal(parseVolumeName("Any Name/At All"), "Any Name/At All");
  assert.throws(() => parseVolumeName(""), invalid(/name is required/));
  assert.throws(() => parseVolumeName(undefined), invalid(/name is required/));
  assert.throws(() => parseVolumeName("x".repeat(129)), invalid(/129 bytes; at most 128/));
  assert.throws(() => parseVolumeName("a\0b"), invalid(/NUL/));
});
