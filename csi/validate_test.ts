import assert from "node:assert/strict";
import { Code, CsiError } from "./errors.ts";
import {
  parseAbsolutePath,
  parseCapabilities,
  parseCapability,
  parseVolumeId,
} from "./validate.ts";

const isInvalid = (field: RegExp) => (e: unknown) =>
  e instanceof CsiError && e.code === Code.INVALID_ARGUMENT && field.test(e.message);

Deno.test("parseVolumeId accepts DNS-like names up to 128 bytes", () => {
  for (const id of ["a", "pvc-0b9e5c1a-1234", "v1.2", "0", "a".repeat(128)]) {
    assert.equal(parseVolumeId(id), id);
  }
});

Deno.test("parseVolumeId rejects everything else, naming the field", () => {
  for (
    const id of ["", "-a", "a-", ".a", "a.", "a..b", "A", "a_b", "a/b", "a b", "a".repeat(129), "é"]
  ) {
    assert.throws(() => parseVolumeId(id, "name"), isInvalid(/^name /), JSON.stringify(id));
  }
  assert.throws(() => parseVolumeId(undefined), isInvalid(/volume_id is required/));
});

Deno.test("parseAbsolutePath", () => {
  assert.equal(parseAbsolutePath("/var/lib/kubelet/x", "target_path"), "/var/lib/kubelet/x");
  for (const p of ["", "rel/x", "/a/../b", "/a/./b", "/a//b", "/a/", "/", "/a\0b"]) {
    assert.throws(
      () => parseAbsolutePath(p, "target_path"),
      isInvalid(/target_path/),
      JSON.stringify(p),
    );
  }
});

const mode = (m: string) => ({ access_mode: { mode: m } });

Deno.test("parseCapability: mount and block, accepted access modes", () => {
  assert.deepEqual(
    parseCapability({
      mount: { fs_type: "xfs", mount_flags: ["noatime", "discard"] },
      ...mode("SINGLE_NODE_WRITER"),
    }),
    {
      accessType: "mount",
      fsType: "xfs",
      mountFlags: ["noatime", "discard"],
      accessMode: "SINGLE_NODE_WRITER",
    },
  );
  assert.deepEqual(parseCapability({ block: {}, ...mode("MULTI_NODE_READER_ONLY") }), {
    accessType: "block",
    mountFlags: [],
    accessMode: "MULTI_NODE_READER_ONLY",
  });
  for (
    const m of ["SINGLE_NODE_READER_ONLY", "SINGLE_NODE_SINGLE_WRITER", "SINGLE_NODE_MULTI_WRITER"]
  ) {
    assert.equal(parseCapability({ mount: {}, ...mode(m) }).accessMode, m);
  }
  assert.equal(
    parseCapability({ mount: { fs_type: "" }, ...mode("SINGLE_NODE_WRITER") }).fsType,
    undefined,
  );
});

Deno.test("parseCapability: rejects multi-node writers, unknown fs, missing parts", () => {
  for (const m of ["MULTI_NODE_MULTI_WRITER", "MULTI_NODE_SINGLE_WRITER"]) {
    assert.throws(() => parseCapability({ mount: {}, ...mode(m) }), isInvalid(/not supported/));
  }
  assert.throws(
    () => parseCapability({ mount: {}, ...mode("UNKNOWN") }),
    isInvalid(/access_mode is required/),
  );
  assert.throws(() => parseCapability({ mount: {} }), isInvalid(/access_mode is required/));
  assert.throws(() => parseCapability(null), isInvalid(/volume_capability is required/));
  assert.throws(() => parseCapability(mode("SINGLE_NODE_WRITER")), isInvalid(/access type/));
  assert.throws(
    () => parseCapability({ mount: { fs_type: "ntfs" }, ...mode("SINGLE_NODE_WRITER") }),
    isInvalid(/fs_type "ntfs" is not supported/),
  );
  assert.throws(
    () =>
      parseCapability({ mount: { fs_type: "xfs" }, ...mode("SINGLE_NODE_WRITER") }, {
        allowedFsTypes: ["ext4"],
      }),
    isInvalid(/use one of ext4/),
  );
  assert.throws(() => parseCapabilities([]), isInvalid(/volume_capabilities is required/));
  assert.throws(
    () => parseCapabilities([{ block: {}, ...mode("SINGLE_NODE_WRITER") }, { mount: {} }]),
    isInvalid(/volume_capabilities\[1\]/),
  );
});

Deno.test("parseCapability: mount flags cannot inject options", () => {
  const cap = (flags: string[]) => ({
    mount: { mount_flags: flags },
    ...mode("SINGLE_NODE_WRITER"),
  });
  assert.deepEqual(parseCapability(cap(["noatime", "commit=30", "data=ordered"])).mountFlags, [
    "noatime",
    "commit=30",
    "data=ordered",
  ]);
  for (
    const bad of [
      "ro,remount",
      "noatime,dev",
      "a b",
      "x=1,y=2",
      "",
      "UPPER",
      "bind",
      "remount",
      "dev",
      "suid",
      "loop=/dev/loop0",
      "x=$(id)",
      "x='a'",
    ]
  ) {
    assert.throws(() => parseCapability(cap([bad])), isInvalid(/mount_flags|mount flag/), bad);
  }
  // The offending flag is not echoed: flags may carry credentials.
  assert.throws(
    () => parseCapability(cap(["password=a b"])),
    (e: Error) => !e.message.includes("password=a b"),
  );
});
