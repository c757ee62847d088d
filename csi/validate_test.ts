import assert from "node:assert/strict";
import { Code, CsiError } from "./errors.ts";
import {
  parseAbsolutePath,
  parseCapabilities,
  parseCapability,
  parseMountFlag,
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
      "bind",
      "remount",
      "dev",
      "suid",
      "loop=/dev/loop0",
      "x=$(id) ",
      "x='a'",
      'x="a"',
      "x=",
      "=x",
      "noatime\n",
    ]
  ) {
    assert.throws(() => parseCapability(cap([bad])), isInvalid(/mount_flags\[0\]/), bad);
  }
  // The offending flag is not echoed: flags may carry credentials. The
  // refusal still names the field and the option, and says what is allowed.
  assert.throws(() => parseCapability(cap(["noatime", "password=a b"])), (e: unknown) => {
    assert.ok(e instanceof CsiError && e.code === Code.INVALID_ARGUMENT, String(e));
    assert.equal(
      e.message,
      'volume_capability.mount.mount_flags[1]: mount option "password" has a value that is not ' +
        'allowed: use printable characters without ",", spaces or quotes (only SELinux contexts ' +
        "may be double-quoted)",
    );
    assert.ok(!e.message.includes("a b"), "the value is echoed");
    return true;
  });
});

const flag = (f: string) => parseMountFlag(f, "mount_flags[0]");

Deno.test("parseMountFlag accepts what mount(8) takes as one option", () => {
  for (
    const ok of [
      "compress-force=zstd", // the original driver's own StorageClass (btrfs)
      "compress=zstd:3",
      "noatime",
      "commit=60",
      "inode64",
      "_netdev",
      "x-mount.mkdir",
      "X-mount.mkdir=0755",
      "x-systemd.device-timeout=30s",
      "subvol=/data",
      "usrjquota=aquota.user", // ext4(5): a file on the volume's own root
      "jqfmt=vfsv1",
      "errors=remount-ro",
      "UPPER=Case",
      "defaults",
      "user",
      "owner",
      "exec",
      "context=system_u:object_r:container_file_t:s0",
      'context="system_u:object_r:container_file_t:s0:c1,c2"', // kubelet's context=%q
      'fscontext="system_u:object_r:container_file_t:s0:c15,c25"',
      'defcontext="system_u:object_r:container_file_t:s0"',
      'rootcontext="system_u:object_r:container_file_t:s0:c0.c1023"',
    ]
  ) {
    assert.equal(flag(ok), ok);
  }
});

Deno.test("parseMountFlag refuses what breaks a guarantee, naming only the option", () => {
  const refused: [string, RegExp][] = [
    ["logdev=/dev/sdb1", /"logdev".*device or path/],
    ["rtdev=/dev/sdc", /"rtdev"/],
    ["journal_path=/dev/disk/by-label/j", /"journal_path"/],
    ["journal_dev=2049", /"journal_dev"/],
    ["device=/dev/sdd", /"device"/],
    ["errors=panic", /"errors".*panic the whole node/],
    ["fatal_errors=panic", /"fatal_errors"/],
    ["remount", /"remount".*mount tree/],
    ["bind", /"bind"/],
    ["rbind", /"rbind"/],
    ["move", /"move"/],
    ["unbindable", /"unbindable"/],
    ["rshared", /"rshared"/],
    ["loop", /"loop"/],
    ["loop=/dev/loop7", /"loop"/],
    ["offset=4096", /"offset"/],
    ["sizelimit=1", /"sizelimit"/],
    ["suid", /"suid".*nodev,nosuid/],
    ["dev", /"dev"/],
    ["Dev", /"Dev"/],
    ["helper=nfs", /"helper"/],
    ["X-mount.idmap=/proc/1/ns/user", /"X-mount.idmap"/],
    // Quotes are for SELinux contexts only, as kubelet writes them.
    ['other="a,b"', /"other" has a value/],
    ["context='a,b'", /"context" has a value/],
    ['context="a b"', /"context" has a value/],
  ];
  for (const [f, re] of refused) {
    assert.throws(() => flag(f), isInvalid(re), f);
    const name = f.split("=")[0];
    const value = f.split("=").slice(1).join("=");
    assert.throws(() => flag(f), (e: Error) => {
      // Names the field and the option, and says what to do about it …
      assert.match(e.message, new RegExp(`^mount_flags\\[0\\]: mount option "${name}" `), f);
      assert.match(
        e.message,
        /remove it from the StorageClass mountOptions|leave "[^"]+" at its default|use printable characters/,
        f,
      );
      // … but never its value, which may be a credential ("panic" is the rule's own word).
      if (value && value !== "panic") assert.ok(!e.message.includes(value), `${f} echoed`);
      return true;
    }, f);
  }
});
