import assert from "node:assert/strict";
import { growFilesystem, makeFilesystem } from "./mkfs.ts";
import { bindMount, mountArgs, mountFilesystem, unmount } from "./mount.ts";
import { bindFreeLoopDevice, detachLoopDevice, listLoopDevices } from "./loop.ts";
import { nbdfuseArgs, nbdUnixUri, unmountFuse } from "./nbdfuse.ts";
import { deviceSizeBytes, interpretBlkidExport } from "./probe.ts";
import { recordingRunner } from "./testing.ts";
import { type Runner, ToolError } from "./run.ts";

function argv(calls: { tool: string; args: string[] }[]): string[][] {
  return calls.map((c) => [c.tool, ...c.args]);
}

Deno.test("makeFilesystem argv per filesystem, with and without label", async () => {
  const { runner, calls } = recordingRunner();
  await makeFilesystem("/dev/loop1", "ext4", { runner });
  await makeFilesystem("/dev/loop1", "xfs", { runner, label: "vol" });
  await makeFilesystem("/dev/loop1", "btrfs", { runner });
  assert.deepEqual(argv(calls), [
    [
      "mkfs.ext4",
      "-F",
      "-E",
      "nodiscard,lazy_itable_init=1,lazy_journal_init=1",
      "-m",
      "0",
      "/dev/loop1",
    ],
    ["mkfs.xfs", "-K", "-f", "-L", "vol", "/dev/loop1"],
    [
      "unshare",
      "--mount",
      "--propagation",
      "private",
      "bash",
      "-c",
      calls[2].args[5],
      "zerofs-csi-hide-dead-mounts",
      "mkfs.btrfs",
      "-K",
      "-f",
      "/dev/loop1",
    ],
  ]);
});

Deno.test("a failing mkfs.btrfs is reported as mkfs.btrfs, not as its namespace wrapper", async () => {
  const runner: Runner = (tool, args) =>
    Promise.reject(new ToolError(tool, args, 1, "ERROR: /dev/loop1 is mounted"));
  await assert.rejects(
    makeFilesystem("/dev/loop1", "btrfs", { runner }),
    (e: unknown) => {
      assert.ok(e instanceof ToolError);
      assert.equal(e.tool, "mkfs.btrfs");
      assert.deepEqual(e.args, ["-K", "-f", "/dev/loop1"]);
      assert.equal(e.message, "mkfs.btrfs exited with code 1: ERROR: /dev/loop1 is mounted");
      return true;
    },
  );
});

Deno.test("growFilesystem argv per filesystem", async () => {
  const { runner, calls } = recordingRunner();
  const target = { device: "/dev/nbd2", mountPoint: "/staging/x", runner };
  await growFilesystem("ext4", target);
  await growFilesystem("xfs", target);
  await growFilesystem("btrfs", target);
  assert.deepEqual(argv(calls), [
    ["resize2fs", "/dev/nbd2"],
    ["xfs_growfs", "-d", "/staging/x"],
    ["btrfs", "filesystem", "resize", "max", "/staging/x"],
  ]);
});

Deno.test("mountFilesystem argv: flags, and read-only options that avoid journal replay", async () => {
  const { runner, calls } = recordingRunner();
  await mountFilesystem("/dev/loop1", "/t", { fsType: "ext4", runner });
  await mountFilesystem("/dev/loop1", "/t", { fsType: "ext4", flags: ["noatime"], runner });
  await mountFilesystem("/dev/loop1", "/t", { fsType: "ext4", readOnly: true, runner });
  await mountFilesystem("/dev/loop1", "/t", { fsType: "xfs", readOnly: true, runner });
  await mountFilesystem("/dev/loop1", "/t", { fsType: "btrfs", readOnly: true, runner });
  assert.deepEqual(argv(calls), [
    ["mount", "-t", "ext4", "-o", "nodev,nosuid", "/dev/loop1", "/t"],
    ["mount", "-t", "ext4", "-o", "noatime,nodev,nosuid", "/dev/loop1", "/t"],
    ["mount", "-t", "ext4", "-o", "nodev,nosuid,ro,noload", "/dev/loop1", "/t"],
    ["mount", "-t", "xfs", "-o", "nodev,nosuid,ro,norecovery", "/dev/loop1", "/t"],
    ["mount", "-t", "btrfs", "-o", "nodev,nosuid,ro,rescue=nologreplay", "/dev/loop1", "/t"],
  ]);
});

Deno.test("bindMount: read-write is one call, read-only and per-mount options remount", async () => {
  const { runner, calls } = recordingRunner();
  await bindMount("/s", "/t", { runner });
  await bindMount("/s", "/t", { runner, readOnly: true });
  await bindMount("/s", "/t", { runner, mountOptions: ["nodev", "nosuid"] });
  await bindMount("/s", "/t", { runner, readOnly: true, mountOptions: ["nodev", "nosuid"] });
  assert.deepEqual(argv(calls), [
    ["mount", "--bind", "/s", "/t"],
    ["mount", "--bind", "/s", "/t"],
    ["mount", "-o", "remount,bind,ro", "/t"],
    ["mount", "--bind", "/s", "/t"],
    ["mount", "-o", "remount,bind,nodev,nosuid", "/t"],
    ["mount", "--bind", "/s", "/t"],
    ["mount", "-o", "remount,bind,nodev,nosuid,ro", "/t"],
  ]);
});

Deno.test("mountArgs: the driver's options come after the flags, so they win", () => {
  assert.deepEqual(
    mountArgs("/dev/loop1", "/t", { fsType: "ext4", flags: ["defaults", "rw"], readOnly: true }),
    ["-t", "ext4", "-o", "defaults,rw,nodev,nosuid,ro,noload", "/dev/loop1", "/t"],
  );
});

Deno.test("bindMount undoes the bind when the read-only remount fails", async () => {
  const { runner, calls } = recordingRunner([{}, { exitCode: 32, stderr: "nope" }]);
  await assert.rejects(
    bindMount("/s", "/t", { runner, readOnly: true }),
    /mount exited with code 32/,
  );
  assert.deepEqual(argv(calls).at(-1), ["umount", "/t"]);
});

Deno.test("unmount skips umount when mountinfo shows nothing there, runs it otherwise", async () => {
  const info = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(info, "50 1 0:40 / /t rw - tmpfs tmpfs rw\n");
    const { runner, calls } = recordingRunner([{
      stdout: "",
    }]);
    await unmount("/not-mounted", { runner, mountInfoPath: info });
    assert.equal(calls.length, 0);
    // The fixture keeps showing /t mounted, so the post-check must complain.
    await assert.rejects(unmount("/t", { runner, mountInfoPath: info }), /still there/);
    assert.deepEqual(argv(calls), [["umount", "/t"]]);
  } finally {
    await Deno.remove(info);
  }
});

Deno.test("losetup wrappers argv and JSON parsing", async () => {
  const json = JSON.stringify({
    loopdevices: [{ name: "/dev/loop0", "back-file": "/v/a/fuse/nbd", dio: true }],
  });
  const { runner, calls } = recordingRunner([
    { stdout: "/dev/loop4\n" },
    { stdout: "/dev/loop5\n" },
    {},
    { stdout: json },
    { stdout: "" },
  ]);
  assert.equal(await bindFreeLoopDevice("/v/a/fuse/nbd", { runner }), "/dev/loop4");
  assert.equal(await bindFreeLoopDevice("/v/a/fuse/nbd", { runner, readOnly: true }), "/dev/loop5");
  await detachLoopDevice("/dev/loop4", { runner });
  assert.deepEqual(await listLoopDevices({ runner }), [{
    device: "/dev/loop0",
    backingFile: "/v/a/fuse/nbd",
  }]);
  assert.deepEqual(await listLoopDevices({ runner }), []);
  assert.deepEqual(argv(calls), [
    ["losetup", "--find", "--show", "--direct-io=on", "/v/a/fuse/nbd"],
    ["losetup", "--find", "--show", "--direct-io=on", "--read-only", "/v/a/fuse/nbd"],
    ["losetup", "-d", "/dev/loop4"],
    ["losetup", "--json", "--list"],
    ["losetup", "--json", "--list"],
  ]);
});

Deno.test("bindFreeLoopDevice rejects unexpected output", async () => {
  const { runner } = recordingRunner([{ stdout: "garbage\n" }]);
  await assert.rejects(
    bindFreeLoopDevice("/v/a/fuse/nbd", { runner }),
    /Cannot bind a loop device/,
  );
});

Deno.test("nbdfuse argv names the export through an NBD URI", () => {
  assert.equal(
    nbdUnixUri("/v/a b/nbd.sock", "disk"),
    "nbd+unix:///disk?socket=%2Fv%2Fa%20b%2Fnbd.sock",
  );
  const base = { fuseFile: "/v/a/fuse/nbd", socketPath: "/v/a/nbd.sock", exportName: "disk" };
  assert.deepEqual(nbdfuseArgs({ ...base, readOnly: false, logPath: "/v/a/l" }), [
    "/v/a/fuse/nbd",
    "nbd+unix:///disk?socket=%2Fv%2Fa%2Fnbd.sock",
  ]);
  assert.deepEqual(nbdfuseArgs({ ...base, readOnly: true, logPath: "/v/a/l" })[0], "--readonly");
});

Deno.test("unmountFuse does nothing for a directory that is not mounted", async () => {
  const { runner, calls } = recordingRunner();
  await unmountFuse("/nonexistent/fuse", { runner });
  assert.equal(calls.length, 0);
});

Deno.test("deviceSizeBytes argv and parsing", async () => {
  const { runner, calls } = recordingRunner([{ stdout: "1073741824\n" }, { stdout: "x" }]);
  assert.equal(await deviceSizeBytes("/dev/loop2", { runner }), 1073741824);
  await assert.rejects(deviceSizeBytes("/dev/loop2", { runner }), /Cannot read the size/);
  assert.deepEqual(argv(calls)[0], ["blockdev", "--getsize64", "/dev/loop2"]);
});

Deno.test("interpretBlkidExport: filesystem, other, partition table, nonsense", () => {
  assert.deepEqual(
    interpretBlkidExport(
      "DEVNAME=/dev/loop0\nUUID=abc\nTYPE=ext4\nUSAGE=filesystem\n",
      "/dev/loop0",
    ),
    { kind: "filesystem", fsType: "ext4", uuid: "abc" },
  );
  assert.deepEqual(
    interpretBlkidExport("TYPE=crypto_LUKS\nUSAGE=crypto\n", "/dev/loop0"),
    { kind: "other", type: "crypto_LUKS" },
  );
  assert.deepEqual(
    interpretBlkidExport("PTUUID=1\nPTTYPE=gpt\n", "/dev/loop0"),
    { kind: "other", type: "partition table (gpt)" },
  );
  assert.throws(
    () => interpretBlkidExport("DEVNAME=/dev/loop0\n", "/dev/loop0"),
    /Cannot interpret/,
  );
});
