import assert from "node:assert/strict";
import {
  publicationConflict,
  publicationOf,
  withoutPublication,
  withPublication,
} from "./publications.ts";
import { CONTROLLER_VOLUME_ENTRY, type ControllerVolumeEntry } from "./registry.ts";

const rw = publicationOf(
  { accessType: "mount", fsType: "ext4", mountFlags: [], accessMode: "SINGLE_NODE_WRITER" },
  false,
);
const entry: ControllerVolumeEntry = {
  name: "pvc-p",
  capacityBytes: 4096,
  volumeContext: {},
  parameters: {},
  createdAt: "2026-01-01T00:00:00.000Z",
  publishedNodes: [],
};

Deno.test("the same publication again is no conflict; any difference is named", () => {
  assert.equal(publicationConflict(rw, { ...rw }), null);
  assert.equal(publicationConflict(undefined, rw), null, "a legacy record accepts it");
  assert.equal(publicationConflict(rw, { ...rw, readonly: true }), "readonly false");
  assert.equal(
    publicationConflict(rw, { ...rw, accessType: "block", fsType: undefined }),
    'mount access, fs type "ext4"',
  );
  assert.equal(
    publicationConflict(rw, { ...rw, accessMode: "SINGLE_NODE_READER_ONLY" }),
    "access mode SINGLE_NODE_WRITER",
  );
  assert.equal(
    publicationConflict({ ...rw, mountFlags: ["context=secret-label"] }, {
      ...rw,
      mountFlags: ["noatime"],
    }),
    "different mount flags (not shown: they may be sensitive)",
    "the flags themselves are never echoed",
  );
});

Deno.test("publish and unpublish keep publishedNodes and publications in step", () => {
  const one = withPublication(entry, "n1", rw);
  const two = withPublication(one, "n2", { ...rw, readonly: true });
  assert.deepEqual(two.publishedNodes, ["n1", "n2"]);
  assert.deepEqual(Object.keys(two.publications!), ["n1", "n2"]);
  assert.deepEqual(withPublication(two, "n1", rw).publishedNodes, ["n1", "n2"]);
  const left = withoutPublication(two, "n1");
  assert.deepEqual(left.publishedNodes, ["n2"]);
  assert.deepEqual(Object.keys(left.publications!), ["n2"]);
  assert.deepEqual(withoutPublication(two, ""), { ...entry, publications: {} });
});

Deno.test("records round-trip publications; old records with a bare node list still read", () => {
  const rec = withPublication({ ...entry, requestName: "Sanity-X" }, "n1", rw);
  assert.deepEqual(
    CONTROLLER_VOLUME_ENTRY.parse(CONTROLLER_VOLUME_ENTRY.serialize(rec), "x.json"),
    rec,
  );
  const old = JSON.stringify({ schema: 1, ...entry, publishedNodes: ["n1"] });
  const parsed = CONTROLLER_VOLUME_ENTRY.parse(old, "old.json");
  assert.deepEqual(parsed.publishedNodes, ["n1"]);
  assert.equal(parsed.publications, undefined);
  assert.equal(parsed.requestName, undefined);
  assert.throws(() =>
    CONTROLLER_VOLUME_ENTRY.parse(
      JSON.stringify({ schema: 1, ...entry, publications: { n1: { readonly: 1 } } }),
      "b",
    )
  );
});
