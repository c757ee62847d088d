/**
 * The block layer against real tools: nbdkit serves, nbdfuse + losetup
 * attach, mkfs/mount/umount act on the real kernel. Runs as root.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type Attachment,
  bindMount,
  deviceSizeBytes,
  findMountByTarget,
  fsStats,
  type FsType,
  fusePaths,
  isProcessAlive,
  isZeroed,
  listLoopDevices,
  loopBackingFile,
  makeFilesystem,
  mountFilesystem,
  type NbdTarget,
  NodeLock,
  pathExists,
  pollUntil,
  probeSignature,
  runTool,
  unmount,
  UserspaceAttacher,
} from "../../blockdev/mod.ts";
import { type RunningNbdkit, startNbdkit } from "../fixtures/nbdkit.ts";

const GIB = 1024 ** 3;

const REQUIRED_TOOLS: Record<string, string> = {
  nbdkit: "nbdkit",
  nbdfuse: "libnbd-bin",
  fusermount3: "fuse3",
  losetup: "util-linux",
  blkid: "util-linux",
  "mkfs.ext4": "e2fsprogs",
  "mkfs.xfs": "xfsprogs",
  "mkfs.btrfs": "btrfs-progs",
};

async function requireTools(): Promise<void> {
  const dirs = (Deno.env.get("PATH") ?? "").split(":").concat(["/usr/sbin", "/sbin"]);
  for (const [tool, pkg] of Object.entries(REQUIRED_TOOLS)) {
    const found = await Promise.all(
      dirs.map((d) => Deno.stat(join(d, tool)).then(() => true, () => false)),
    );
    if (!found.includes(true)) {
      throw new Error(`host tool "${tool}" is missing: apt-get install -y ${pkg}`);
    }
  }
}

/** A scratch directory, an attacher, and cleanup of everything attached or mounted in it. */
interface Scratch {
  dir: string;
  attacher: UserspaceAttacher;
  attachments: Attachment[];
  mounts: string[];
  target(name: string, socketPath: string, readOnly?: boolean): Promise<NbdTarget>;
}

async function withScratch(fn: (s: Scratch) => Promise<void>): Promise<void> {
  await requireTools();
  await Deno.mkdir("/run/zerofs-csi", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "/run/zerofs-csi", prefix: "test-" });
  const attacher = new UserspaceAttacher({ lock: new NodeLock(join(dir, "devices.lock")) });
  const scratch: Scratch = {
    dir,
    attacher,
    attachments: [],
    mounts: [],
    async target(name, socketPath, readOnly = false) {
      const workDir = join(dir, name);
      await Deno.mkdir(workDir, { recursive: true });
      return { volumeId: name, socketPath, exportName: "disk", readOnly, workDir };
    },
  };
  try {
    await fn(scratch);
  } finally {
    for (const m of scratch.mounts.reverse()) await unmount(m).catch(console.error);
    for (const a of scratch.attachments) await attacher.detach(a).catch(console.error);
    await Deno.remove(dir, { recursive: true });
  }
}

/** Attach and remember the attachment for cleanup, collecting every recorded intent. */
async function attach(s: Scratch, target: NbdTarget, intents: Attachment[] = []) {
  const last: Attachment = { mode: "userspace", device: "" };
  s.attachments.push(last);
  const attachment = await s.attacher.attach(target, (a) => {
    intents.push(a);
    Object.assign(last, a);
    return Promise.resolve();
  });
  Object.assign(last, attachment);
  return attachment;
}

/** Make `dir` a shared mount (a bind onto itself), as `Bidirectional` needs. */
async function sharedBindMount(dir: string): Promise<void> {
  await runTool("mount", ["--bind", dir, dir], { timeoutMs: 10_000 });
  await runTool("mount", ["--make-rshared", dir], { timeoutMs: 10_000 });
}

/** Nothing of `attachment` is left: no loop device on its file, no FUSE mount, no helper. */
async function assertReleased(attachment: Attachment): Promise<void> {
  const fuseFile = join(attachment.fuseDir!, "nbd");
  const loops = (await listLoopDevices()).filter((l) => l.backingFile === fuseFile);
  assert.deepEqual(loops, [], "no loop device left on the FUSE file");
  assert.equal(await findMountByTarget(attachment.fuseDir!), undefined, "FUSE dir unmounted");
  assert.equal(await isProcessAlive(attachment.helperPid!), false, "nbdfuse has exited");
}

async function timed<T>(label: string, fn: () => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    return await fn();
  } finally {
    console.log(`  ⏱ ${label}: ${(performance.now() - started).toFixed(0)} ms`);
  }
}

async function makeSparseFile(path: string, sizeBytes: number): Promise<void> {
  using file = await Deno.open(path, { create: true, write: true });
  await file.truncate(sizeBytes);
}

/** nbdkit serving a new sparse 1 GiB image file `<name>.img` on `<name>.sock`. */
async function serveSparseImage(s: Scratch, name: string): Promise<RunningNbdkit> {
  const image = join(s.dir, `${name}.img`);
  await makeSparseFile(image, GIB);
  return startNbdkit({ socketPath: join(s.dir, `${name}.sock`), plugin: "file", file: image });
}

for (const fsType of ["ext4", "xfs", "btrfs"] as FsType[]) {
  Deno.test(`userspace attach → mkfs.${fsType} → mount → write → detach → reattach keeps data`, async () => {
    await withScratch(async (s) => {
      await using nbdkit = await serveSparseImage(s, "nbd");
      const target = await s.target("pvc-a", nbdkit.socketPath);
      const intents: Attachment[] = [];
      const first = await timed("attach (userspace)", () => attach(s, target, intents));
      assert.match(first.device, /^\/dev\/loop\d+$/);
      assert.deepEqual(
        intents.map((a) => [Boolean(a.fuseDir), a.helperPid !== undefined, a.device]),
        [
          [true, false, ""],
          [true, true, ""],
          [true, true, first.device],
        ],
      );
      assert.equal(await s.attacher.isConnected(first), true);
      assert.equal(await deviceSizeBytes(first.device), GIB);
      assert.deepEqual(await probeSignature(first.device), { kind: "none" });
      assert.equal(await isZeroed(first.device), true);

      await timed(`mkfs.${fsType} 1 GiB`, () => makeFilesystem(first.device, fsType));
      const signature = await probeSignature(first.device);
      assert.equal(signature.kind === "filesystem" && signature.fsType, fsType);
      assert.equal(await isZeroed(first.device, { bytes: 128 * 1024 * 1024 }), false);

      const mnt = join(s.dir, "mnt");
      await Deno.mkdir(mnt);
      s.mounts.push(mnt);
      await mountFilesystem(first.device, mnt, { fsType });
      await Deno.writeTextFile(join(mnt, "hello.txt"), `hello ${fsType}`);
      const stats = await fsStats(mnt);
      assert.ok(
        stats.totalBytes > 0.8 * GIB && stats.totalBytes <= GIB,
        `total ${stats.totalBytes}`,
      );
      assert.ok(stats.usedBytes > 0 && stats.availableBytes < stats.totalBytes);
      await unmount(mnt);
      await unmount(mnt); // idempotent

      await timed("detach (userspace)", () => s.attacher.detach(first));
      await assertReleased(first);
      assert.equal(await s.attacher.isConnected(first), false);

      const second = await attach(s, target);
      await mountFilesystem(second.device, mnt, { fsType, readOnly: true });
      assert.equal(await Deno.readTextFile(join(mnt, "hello.txt")), `hello ${fsType}`);
      await assert.rejects(Deno.writeTextFile(join(mnt, "x"), "x"), /Read-only file system/);
      await unmount(mnt);
      await s.attacher.detach(second);
      await assertReleased(second);
    });
  });
}

/** A volume whose nbdfuse died under its mounted ext4: its FUSE mount answers ENOTCONN. */
async function makeDeadVolume(s: Scratch, name: string): Promise<Attachment> {
  const server = await startNbdkit({
    socketPath: join(s.dir, `${name}.sock`),
    plugin: "memory",
    sizeBytes: 64 << 20,
  });
  try {
    const dead = await attach(s, await s.target(name, server.socketPath));
    await makeFilesystem(dead.device, "ext4");
    const mountPoint = join(s.dir, `${name}-mnt`);
    await Deno.mkdir(mountPoint);
    s.mounts.push(mountPoint);
    await mountFilesystem(dead.device, mountPoint, { fsType: "ext4" });
    Deno.kill(dead.helperPid!, "SIGKILL");
    while (await isProcessAlive(dead.helperPid!)) await new Promise((r) => setTimeout(r, 10));
    await assert.rejects(Deno.stat(join(dead.fuseDir!, "nbd")), /not connected|connection abort/);
    return dead;
  } finally {
    await server.stop();
  }
}

Deno.test("dead FUSE mounts elsewhere on the node do not stop mkfs (btrfs-progs stats every loop's backing file)", async () => {
  await withScratch(async (s) => {
    // Two, so that hiding one must not make the scan miss the next.
    const dead = [await makeDeadVolume(s, "pvc-dead-1"), await makeDeadVolume(s, "pvc-dead-2")];
    await using live = await serveSparseImage(s, "live");
    const device = (await attach(s, await s.target("pvc-live", live.socketPath))).device;
    for (const fsType of ["btrfs", "xfs", "ext4"] as FsType[]) {
      await makeFilesystem(device, fsType);
      const signature = await probeSignature(device);
      assert.equal(signature.kind === "filesystem" && signature.fsType, fsType);
    }
    for (const d of dead) {
      assert.ok(await findMountByTarget(d.fuseDir!), "the host's dead FUSE mounts are untouched");
    }
  });
});

Deno.test("probeSignature on a device that does not exist throws, never 'none'", async () => {
  await assert.rejects(probeSignature("/dev/loop-zerofs-missing"), /Cannot probe/);
});

Deno.test("probeSignature on a free (size 0) loop device throws, never 'none'", async () => {
  await withScratch(async (s) => {
    await using nbdkit = await startNbdkit({
      socketPath: join(s.dir, "nbd.sock"),
      plugin: "memory",
    });
    const a = await attach(s, await s.target("pvc-free", nbdkit.socketPath));
    await s.attacher.detach(a);
    await assert.rejects(probeSignature(a.device), /Cannot probe/);
  });
});

Deno.test("detach twice is fine, and a read-only attach refuses writes", async () => {
  await withScratch(async (s) => {
    await using nbdkit = await startNbdkit({
      socketPath: join(s.dir, "nbd.sock"),
      plugin: "memory",
    });
    const a = await attach(s, await s.target("pvc-ro", nbdkit.socketPath, true));
    assert.equal(await probeSignature(a.device).then((sig) => sig.kind), "none");
    {
      // Linux lets a read-only block device be opened for writing; the write fails.
      using dev = await Deno.open(a.device, { write: true });
      await assert.rejects(dev.write(new Uint8Array(4096)), /Operation not permitted|Read-only/);
    }
    await s.attacher.detach(a);
    await s.attacher.detach(a);
    await assertReleased(a);
  });
});

Deno.test("attach with no NBD server fails cleanly and leaves nothing behind", async () => {
  await withScratch(async (s) => {
    const target = await s.target("pvc-down", join(s.dir, "absent.sock"));
    const intents: Attachment[] = [];
    await assert.rejects(attach(s, target, intents), /nbdfuse exited/);
    const last = intents.at(-1)!;
    assert.ok(last.helperPid !== undefined, "the helper pid was recorded");
    assert.equal(last.device, "");
    await assertReleased(last);
  });
});

Deno.test("8 concurrent attaches get 8 distinct loop devices", async () => {
  await withScratch(async (s) => {
    const servers = await Promise.all(
      [...Array(8).keys()].map((i) =>
        startNbdkit({
          socketPath: join(s.dir, `nbd${i}.sock`),
          plugin: "memory",
          sizeBytes: 64 << 20,
        })
      ),
    );
    try {
      const targets = await Promise.all(servers.map((n, i) => s.target(`pvc-${i}`, n.socketPath)));
      const attached = await Promise.all(targets.map((t) => attach(s, t)));
      assert.equal(new Set(attached.map((a) => a.device)).size, 8);
      for (const a of attached) assert.equal(await deviceSizeBytes(a.device), 64 << 20);
      await Promise.all(attached.map((a) => s.attacher.detach(a)));
      for (const a of attached) await assertReleased(a);
    } finally {
      await Promise.all(servers.map((n) => n.stop()));
    }
  });
});

Deno.test("the device keeps working after the attaching process is killed", async () => {
  await withScratch(async (s) => {
    await using nbdkit = await startNbdkit({
      socketPath: join(s.dir, "nbd.sock"),
      plugin: "memory",
    });
    const target = await s.target("pvc-survive", nbdkit.socketPath);
    const script = join(s.dir, "agent.ts");
    const modUrl = new URL("../../blockdev/mod.ts", import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `import { NodeLock, UserspaceAttacher } from ${JSON.stringify(modUrl)};
       const attacher = new UserspaceAttacher({ lock: new NodeLock(${
        JSON.stringify(join(s.dir, "l"))
      }) });
       const a = await attacher.attach(${JSON.stringify(target)}, () => Promise.resolve());
       console.log(JSON.stringify(a));
       await new Promise(() => {});`,
    );
    const agent = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", script],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    let attachment: Attachment;
    try {
      const reader = agent.stdout.pipeThrough(new TextDecoderStream()).getReader();
      const { value } = await reader.read();
      attachment = JSON.parse(value!);
      s.attachments.push(attachment);
      reader.releaseLock();
    } finally {
      agent.kill("SIGKILL");
      await agent.status;
      await agent.stdout.cancel().catch(() => {});
    }
    assert.equal(await s.attacher.isConnected(attachment), true, "connected after the agent died");
    const block = new Uint8Array(4096).fill(0x5a);
    {
      using dev = await Deno.open(attachment.device, { read: true, write: true });
      await dev.write(block);
      await dev.syncData();
    }
    {
      using dev = await Deno.open(attachment.device, { read: true });
      const back = new Uint8Array(4096);
      await dev.read(back);
      assert.deepEqual(back, block);
    }
    await s.attacher.detach(attachment);
    await assertReleased(attachment);
  });
});

Deno.test("through a process keeper, the device outlives the attaching agent's mount namespace", async () => {
  // As in a node pod with the userspace-attach component: the keeper and the agent
  // each have a mount namespace of their own, sharing the state directory (a shared
  // mount, as Bidirectional makes it); the agent is killed and its namespace is gone.
  await withScratch(async (s) => {
    await sharedBindMount(s.dir);
    const socket = join(s.dir, "keeper.sock");
    const main = new URL("../../main.ts", import.meta.url).pathname;
    const inOwnMountNamespace = (args: string[], stdout: "piped" | "null") =>
      new Deno.Command("unshare", {
        args: ["-m", "--propagation", "unchanged", Deno.execPath(), "run", "-A", ...args],
        stdout,
        stderr: "inherit",
      }).spawn();
    const keeper = inOwnMountNamespace(
      [main, "process-keeper", "--socket", socket, "--state-dir", s.dir],
      "null",
    );
    let attachment: Attachment | undefined;
    try {
      await using nbdkit = await startNbdkit({
        socketPath: join(s.dir, "nbd.sock"),
        plugin: "memory",
      });
      const target = await s.target("pvc-kept", nbdkit.socketPath);
      assert.ok(
        await pollUntil(() => pathExists(socket).then((e) => e || undefined), {
          timeoutMs: 30_000,
        }),
        "the keeper never listened",
      );
      const script = join(s.dir, "agent.ts");
      const modUrl = new URL("../../blockdev/mod.ts", import.meta.url).href;
      await Deno.writeTextFile(
        script,
        `import { NodeLock, spawnThroughKeeper, UserspaceAttacher } from ${JSON.stringify(modUrl)};
         const attacher = new UserspaceAttacher({
           lock: new NodeLock(${JSON.stringify(join(s.dir, "l"))}),
           spawn: spawnThroughKeeper(${JSON.stringify(socket)}),
         });
         const a = await attacher.attach(${JSON.stringify(target)}, () => Promise.resolve());
         console.log(JSON.stringify(a));
         await new Promise(() => {});`,
      );
      const agent = inOwnMountNamespace([script], "piped");
      try {
        const reader = agent.stdout.pipeThrough(new TextDecoderStream()).getReader();
        attachment = JSON.parse((await reader.read()).value!) as Attachment;
        reader.releaseLock();
      } finally {
        agent.kill("SIGKILL");
        await agent.status;
        await agent.stdout.cancel().catch(() => {});
      }
      const fuseFile = join(attachment.fuseDir!, "nbd");
      assert.equal(
        await loopBackingFile(attachment.device),
        fuseFile,
        "still named after its file",
      );
      assert.equal(
        await s.attacher.isConnected(attachment),
        true,
        "connected after the agent died",
      );
      const block = new Uint8Array(4096).fill(0x3c);
      {
        using dev = await Deno.open(attachment.device, { read: true, write: true });
        await dev.write(block);
        await dev.syncData();
      }
      await s.attacher.detach(attachment);
      await assertReleased(attachment);
    } finally {
      if (attachment) await s.attacher.detach(attachment).catch(console.error);
      keeper.kill("SIGTERM");
      await keeper.status;
      await unmount(s.dir).catch(console.error);
    }
  });
});

Deno.test("read-only bind mount refuses writes; read-write one accepts them", async () => {
  await withScratch(async (s) => {
    const source = join(s.dir, "src");
    const ro = join(s.dir, "ro");
    const rw = join(s.dir, "rw");
    for (const d of [source, ro, rw]) await Deno.mkdir(d);
    s.mounts.push(ro, rw);
    await bindMount(source, ro, { readOnly: true });
    await bindMount(source, rw);
    await Deno.writeTextFile(join(rw, "f"), "x");
    assert.equal(await Deno.readTextFile(join(ro, "f")), "x");
    await assert.rejects(Deno.writeTextFile(join(ro, "g"), "y"), /Read-only file system/);
    assert.ok((await findMountByTarget(ro))?.options.includes("ro"));
    await unmount(ro);
    await unmount(rw);
    assert.equal(await findMountByTarget(ro), undefined);
  });
});

Deno.test("fusePaths matches the layout of zerofs/paths.ts", () => {
  assert.deepEqual(fusePaths("/v/x"), {
    fuseDir: "/v/x/fuse",
    fuseFile: "/v/x/fuse/nbd",
    logPath: "/v/x/nbdfuse.log",
  });
});
