import assert from "node:assert/strict";
import type { FsType, Signature } from "../../blockdev/mod.ts";
import type { VolumeFsType, VolumeRecord } from "../../zerofs/mod.ts";
import { Code } from "../errors.ts";
import { decideFormat, type FormatDecision, FormatRefusedError } from "./format_once.ts";

function record(fsType: VolumeFsType, formatted: boolean): VolumeRecord {
  return {
    schema: 2,
    driverVersion: "0.1.0",
    fsType,
    formatted,
    createdAt: "2026-01-01T00:00:00.000Z",
    ...(formatted ? { formattedAt: "2026-01-01T00:00:01.000Z" } : {}),
    zerofs: { formattedBy: "0.16.2", servedBy: "0.16.2" },
  };
}

const NONE: Signature = { kind: "none" };
const EXT4: Signature = { kind: "filesystem", fsType: "ext4", uuid: "0b5c…" };
const XFS: Signature = { kind: "filesystem", fsType: "xfs" };
const LUKS: Signature = { kind: "other", type: "crypto_LUKS" };

interface Case {
  /** `B<n>`: the branch of decideFormat, in source order, that the case reaches. */
  name: string;
  requested: FsType;
  record: VolumeRecord | null;
  signature: Signature;
  /** What the zero check answers; undefined = it must not be asked. */
  zero?: boolean;
  expect: { action: "format" } | { action: "mount"; fsType: string; writeRecord: boolean } | {
    action: "refuse";
    reason: RegExp;
  };
}

const CASES: Case[] = [
  {
    name: "B1 record says raw block: refuse, even over a filesystem signature",
    requested: "ext4",
    record: record("block", true),
    signature: EXT4,
    expect: { action: "refuse", reason: /created for raw block access.*volumeMode: Block$/ },
  },
  {
    name: "B1 record says raw block, never formatted, blank disk: refuse, no zero check",
    requested: "ext4",
    record: record("block", false),
    signature: NONE,
    expect: { action: "refuse", reason: /created for raw block access/ },
  },
  {
    name: "B2 filesystem of another type than requested: refuse, naming both",
    requested: "ext4",
    record: record("xfs", true),
    signature: XFS,
    expect: {
      action: "refuse",
      reason: /^the device holds a xfs filesystem but ext4 was requested; .*fsType to xfs$/,
    },
  },
  {
    name: "B3 filesystem as requested, record says formatted: mount, record untouched",
    requested: "ext4",
    record: record("ext4", true),
    signature: EXT4,
    expect: { action: "mount", fsType: "ext4", writeRecord: false },
  },
  {
    name: "B4 filesystem as requested, no record (original driver's volume): mount, write record",
    requested: "ext4",
    record: null,
    signature: EXT4,
    expect: { action: "mount", fsType: "ext4", writeRecord: true },
  },
  {
    name: "B4 filesystem as requested, record not yet formatted (crash after mkfs): mount, write",
    requested: "xfs",
    record: record("xfs", false),
    signature: XFS,
    expect: { action: "mount", fsType: "xfs", writeRecord: true },
  },
  {
    name: "B5 a non-filesystem signature (LUKS): refuse, naming it",
    requested: "ext4",
    record: null,
    signature: LUKS,
    expect: {
      action: "refuse",
      reason: /^the device holds "crypto_LUKS" data, not a filesystem; refusing to format$/,
    },
  },
  {
    name: "B6 no signature but the record says formatted: refuse, no zero check",
    requested: "ext4",
    record: record("ext4", true),
    signature: NONE,
    expect: {
      action: "refuse",
      reason: /formatted as ext4, but blkid finds no filesystem signature.*zerofs-csi attach/,
    },
  },
  {
    name: "B7 no signature, unformatted record, first megabyte not zero: refuse",
    requested: "ext4",
    record: record("ext4", false),
    signature: NONE,
    zero: false,
    expect: {
      action: "refuse",
      reason: /^the device has no filesystem signature but its first megabyte is not empty/,
    },
  },
  {
    name: "B8 no signature, no record, first megabyte not zero: refuse as unknown data",
    requested: "ext4",
    record: null,
    signature: NONE,
    zero: false,
    expect: {
      action: "refuse",
      reason: /^the volume has no zerofs-csi record .*\(data of an unknown kind\); refusing/,
    },
  },
  {
    name: "B9 no signature, unformatted record, zeros: format",
    requested: "btrfs",
    record: record("btrfs", false),
    signature: NONE,
    zero: true,
    expect: { action: "format" },
  },
  {
    name: "B9 no signature, no record, zeros (a new disk): format",
    requested: "ext4",
    record: null,
    signature: NONE,
    zero: true,
    expect: { action: "format" },
  },
];

for (const c of CASES) {
  Deno.test(`decideFormat ${c.name}`, async () => {
    let zeroChecks = 0;
    const decision: FormatDecision = await decideFormat({
      requestedFsType: c.requested,
      record: c.record,
      signature: c.signature,
      firstMegabyteIsZero: () => {
        zeroChecks++;
        if (c.zero === undefined) throw new Error("the zero check must not be asked here");
        return Promise.resolve(c.zero);
      },
    });
    assert.equal(zeroChecks, c.zero === undefined ? 0 : 1, "zero checks");
    if (c.expect.action !== "refuse") {
      assert.deepEqual(decision, c.expect);
      return;
    }
    assert.equal(decision.action, "refuse");
    const { reason } = decision as { reason: string };
    assert.match(reason, c.expect.reason);
    // How stage turns a refusal into the gRPC answer.
    const err = new FormatRefusedError(`cannot stage volume "pvc-f": ${reason}`);
    assert.equal(err.code, Code.FAILED_PRECONDITION);
    assert.equal(err.message, `cannot stage volume "pvc-f": ${reason}`);
  });
}

Deno.test("decideFormat: a failing zero check is an error, never a yes or a no", async () => {
  await assert.rejects(
    decideFormat({
      requestedFsType: "ext4",
      record: null,
      signature: NONE,
      firstMegabyteIsZero: () => Promise.reject(new Error("read /dev/nbd0: EIO")),
    }),
    /EIO/,
  );
});
