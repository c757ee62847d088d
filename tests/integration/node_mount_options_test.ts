/**
 * Mount options, proven against the kernel's mount table rather than argv:
 * the capability's mount flags reach the filesystem (btrfs
 * `compress-force=zstd` as in the original driver's StorageClass, ext4
 * `noatime,commit=60`, xfs `inode64`), every tenant mount (staging and
 * publish) is `nodev,nosuid`, and each refused class of option is
 * INVALID_ARGUMENT naming the option, with nothing touched.
 *
 * Run as root: `deno test -A tests/integration/node_mount_options_test.ts`.
 */

import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import { findMountByTarget, type MountEntry } from "../../blockdev/mod.ts";
import {
  assertNothingLeft,
  rejectedWithoutTrace,
  withNodeEnvironment,
} from "../helpers/node_env.ts";
import { type AccessKind, createVolume, nodeRequests } from "../helpers/volume_steps.ts";

const GiB = 1024 ** 3;

const mountCap = (fs_type: string, mount_flags: string[]) => ({
  mount: { fs_type, mount_flags },
  access_mode: { mode: "SINGLE_NODE_WRITER" },
});

/** The mount at `path` per /proc/self/mountinfo; fails when there is none. */
async function mountAt(path: string): Promise<MountEntry> {
  const entry = await findMountByTarget(path);
  assert.ok(entry, `${path} is a mount point`);
  return entry;
}

function assertTenantMount(entry: MountEntry, what: string): void {
  for (const o of ["nodev", "nosuid"]) {
    assert.ok(entry.options.includes(o), `${what}: ${o} in [${entry.options}]`);
  }
}

const CASES: {
  kind: Exclude<AccessKind, "block">;
  flags: string[];
  check: (m: MountEntry) => void;
}[] = [
  {
    kind: "btrfs",
    flags: ["compress-force=zstd"],
    // The kernel shows the level it picked: compress-force=zstd:3.
    check: (m) =>
      assert.ok(
        m.superOptions.some((o) => /^compress-force=zstd(:\d+)?$/.test(o)),
        `compress-force=zstd in [${m.superOptions}]`,
      ),
  },
  {
    kind: "ext4",
    flags: ["noatime", "commit=60"],
    check: (m) => {
      assert.ok(m.options.includes("noatime"), `noatime in [${m.options}]`);
      assert.ok(m.superOptions.includes("commit=60"), `commit=60 in [${m.superOptions}]`);
    },
  },
  {
    kind: "xfs",
    flags: ["inode64"],
    check: (m) => assert.ok(m.superOptions.includes("inode64"), `inode64 in [${m.superOptions}]`),
  },
];

Deno.test("node mount options: flags reach the filesystem; tenant mounts are nodev,nosuid", async () => {
  await withNodeEnvironment(async (env) => {
    const node = env.node.client.node;
    for (const { kind, flags, check } of CASES) {
      const name = `pvc-opts-${kind}`;
      const volume = await createVolume(env.controller.client, { name, kind, sizeBytes: GiB });
      const req = nodeRequests(volume, { kind, kubeletDir: env.kubeletDir });
      const capability = mountCap(kind, flags);
      await node.NodeStageVolume({ ...req.stage, volume_capability: capability });
      const staged = await mountAt(req.staging);
      assert.equal(staged.fsType, kind);
      check(staged);
      assertTenantMount(staged, `${kind} staging`);

      await node.NodePublishVolume({ ...req.publish, volume_capability: capability });
      const published = await mountAt(req.target);
      assert.equal(published.devNumbers, staged.devNumbers, "the target shows the volume");
      check(published);
      assertTenantMount(published, `${kind} target`);
      const readOnlyTarget = `${req.target}-ro`;
      await node.NodePublishVolume({
        ...req.publish,
        target_path: readOnlyTarget,
        readonly: true,
        volume_capability: capability,
      });
      const ro = await mountAt(readOnlyTarget);
      assert.ok(ro.options.includes("ro"), `ro in [${ro.options}]`);
      assertTenantMount(ro, `${kind} read-only target`);

      await node.NodeUnpublishVolume({ ...req.unpublish, target_path: readOnlyTarget });
      await node.NodeUnpublishVolume(req.unpublish);
      await node.NodeUnstageVolume(req.unstage);
    }
    await assertNothingLeft(env);
  });
});

Deno.test("node mount options: each refused class is INVALID_ARGUMENT and touches nothing", async () => {
  await withNodeEnvironment(async (env) => {
    const node = env.node.client.node;
    const volume = await createVolume(env.controller.client, {
      name: "pvc-opts-refused",
      kind: "ext4",
      sizeBytes: GiB,
    });
    const req = nodeRequests(volume, { kind: "ext4", kubeletDir: env.kubeletDir });
    const refused: [string, string][] = [
      ["xfs", "logdev=/dev/sdz1"],
      ["xfs", "rtdev=/dev/sdz2"],
      ["ext4", "journal_path=/dev/sdz3"],
      ["ext4", "journal_dev=2049"],
      ["btrfs", "device=/dev/sdz4"],
      ["ext4", "errors=panic"],
      ["ext4", "remount"],
      ["ext4", "bind"],
      ["ext4", "loop"],
      ["ext4", "suid"],
      ["ext4", "dev"],
    ];
    for (const [fsType, flag] of refused) {
      const option = flag.split("=")[0];
      const details = await rejectedWithoutTrace(
        env,
        () =>
          node.NodeStageVolume({
            ...req.stage,
            volume_capability: mountCap(fsType, ["noatime", flag]),
          }),
        status.INVALID_ARGUMENT,
        new RegExp(`mount_flags\\[1\\]: mount option "${option}"`),
      );
      const value = flag.split("=")[1];
      if (value && value !== "panic") {
        assert.ok(!details.includes(value), `${flag}: the value is not echoed: ${details}`);
      }
      assert.ok(!details.includes("noatime"), `the flag list is not echoed: ${details}`);
    }
    // A storage scheme ZeroFS could not authenticate to is refused before any ZeroFS starts.
    await rejectedWithoutTrace(
      env,
      () =>
        node.NodeStageVolume({
          ...req.stage,
          volume_context: { ...req.stage.volume_context, storageURL: "gs://bucket/volumes" },
        }),
      status.INVALID_ARGUMENT,
      /gs:\/\/ is not supported/,
    );
    await assertNothingLeft(env);
  });
});
