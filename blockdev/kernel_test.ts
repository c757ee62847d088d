import assert from "node:assert/strict";
import { KernelAttacher } from "./kernel.ts";
import { NodeLock } from "./lock.ts";
import { type RecordedCall, recordingRunner } from "./testing.ts";
import { type Attachment, type NbdTarget, NoFreeDeviceError } from "./types.ts";

const TARGET: NbdTarget = {
  volumeId: "pvc-1",
  socketPath: "/var/lib/zerofs-csi/v/0123456789abcdef/nbd.sock",
  exportName: "disk",
  readOnly: false,
  workDir: "/var/lib/zerofs-csi/v/0123456789abcdef",
};

/** A fake sysfs with `count` free nbd devices, plus a runner that acts like the kernel. */
async function fakeNode(count: number, opts: { connectedSectors?: number } = {}) {
  await Deno.mkdir("/run/zerofs-csi", { recursive: true });
  const root = await Deno.makeTempDir({ dir: "/run/zerofs-csi", prefix: "test-" });
  for (let i = count - 1; i >= 0; i--) {
    await Deno.mkdir(`${root}/block/nbd${i}`, { recursive: true });
    await Deno.writeTextFile(`${root}/block/nbd${i}/size`, "0\n");
  }
  await Deno.mkdir(`${root}/block/loop0`, { recursive: true });
  const kernel = async (call: RecordedCall) => {
    const dev = call.args.at(-1)!.replace("/dev/", "");
    if (call.args[0] === "-d") {
      await Deno.remove(`${root}/block/${dev}/pid`).catch(() => {});
      await Deno.writeTextFile(`${root}/block/${dev}/size`, "0\n");
    } else {
      await Deno.writeTextFile(`${root}/block/${dev}/pid`, "123\n");
      await Deno.writeTextFile(`${root}/block/${dev}/size`, `${opts.connectedSectors ?? 2048}\n`);
    }
  };
  const calls: RecordedCall[] = [];
  const runner = async (tool: string, args: readonly string[]) => {
    const call = { tool, args: [...args] };
    calls.push(call);
    await kernel(call);
    return { exitCode: 0, stdout: "", stderr: "" };
  };
  const attacher = new KernelAttacher({
    lock: new NodeLock(`${root}/devices.lock`),
    runner,
    sysRoot: root,
    releaseTimeoutMs: 200,
  });
  const cleanup = () => Deno.remove(root, { recursive: true });
  return { root, attacher, calls, cleanup };
}

Deno.test("kernel attach picks the lowest free device, records it first, runs nbd-client", async () => {
  const node = await fakeNode(3);
  try {
    await Deno.writeTextFile(`${node.root}/block/nbd0/pid`, "99\n");
    await Deno.writeTextFile(`${node.root}/block/nbd0/size`, "8\n");
    const recorded: Attachment[] = [];
    const attachment = await node.attacher.attach(TARGET, (a) => {
      assert.equal(node.calls.length, 0, "recorded before connecting");
      recorded.push(a);
      return Promise.resolve();
    });
    assert.deepEqual(attachment, { mode: "kernel", device: "/dev/nbd1" });
    assert.deepEqual(recorded, [{ mode: "kernel", device: "/dev/nbd1" }]);
    assert.deepEqual(node.calls, [{
      tool: "nbd-client",
      args: [
        "-unix",
        TARGET.socketPath,
        "-N",
        "disk",
        "-b",
        "4096",
        "-C",
        "1",
        "-t",
        "60",
        "/dev/nbd1",
      ],
    }]);
    assert.equal(await node.attacher.isConnected(attachment), true);
    assert.equal(await node.attacher.capacity(), 3);
  } finally {
    await node.cleanup();
  }
});

Deno.test("kernel attach passes -readonly for a read-only target", async () => {
  const node = await fakeNode(1);
  try {
    await node.attacher.attach({ ...TARGET, readOnly: true }, () => Promise.resolve());
    assert.deepEqual(node.calls[0].args.slice(-2), ["-readonly", "/dev/nbd0"]);
  } finally {
    await node.cleanup();
  }
});

Deno.test("kernel detach runs nbd-client -d once, then is idempotent", async () => {
  const node = await fakeNode(2);
  try {
    const attachment = await node.attacher.attach(TARGET, () => Promise.resolve());
    await node.attacher.detach(attachment);
    await node.attacher.detach(attachment);
    assert.deepEqual(node.calls.map((c) => c.args.join(" ")).slice(1), ["-d /dev/nbd0"]);
    assert.equal(await node.attacher.isConnected(attachment), false);
  } finally {
    await node.cleanup();
  }
});

Deno.test("kernel attach with every device busy throws NoFreeDeviceError", async () => {
  const node = await fakeNode(2);
  try {
    await node.attacher.attach(TARGET, () => Promise.resolve());
    await node.attacher.attach(TARGET, () => Promise.resolve());
    await assert.rejects(node.attacher.attach(TARGET, () => Promise.resolve()), NoFreeDeviceError);
  } finally {
    await node.cleanup();
  }
});

Deno.test("kernel attach without the nbd module says to load it", async () => {
  const node = await fakeNode(0);
  try {
    assert.equal(await node.attacher.capacity(), 0);
    await assert.rejects(
      node.attacher.attach(TARGET, () => Promise.resolve()),
      (e) => e instanceof NoFreeDeviceError && /no nbd devices.*modprobe nbd/.test(e.message),
    );
    assert.deepEqual(node.calls, []);
  } finally {
    await node.cleanup();
  }
});

Deno.test("kernel attach that shows size 0 disconnects and throws", async () => {
  const node = await fakeNode(1, { connectedSectors: 0 });
  try {
    await assert.rejects(node.attacher.attach(TARGET, () => Promise.resolve()), /size 0 bytes/);
    assert.deepEqual(node.calls.map((c) => c.args[0]), ["-unix", "-d"]);
  } finally {
    await node.cleanup();
  }
});

Deno.test("kernel attach disconnects when nbd-client fails", async () => {
  const { runner, calls } = recordingRunner([{ exitCode: 1, stderr: "Error: CONNECT failed" }]);
  const node = await fakeNode(1);
  try {
    await Deno.writeTextFile(`${node.root}/block/nbd0/size`, "0\n");
    const attacher = new KernelAttacher({
      lock: new NodeLock(`${node.root}/devices.lock`),
      runner,
      sysRoot: node.root,
    });
    await assert.rejects(attacher.attach(TARGET, () => Promise.resolve()), /CONNECT failed/);
    // Nothing connected, so detach had nothing to undo.
    assert.deepEqual(calls.map((c) => c.tool), ["nbd-client"]);
  } finally {
    await node.cleanup();
  }
});

Deno.test("concurrent kernel attaches get distinct devices", async () => {
  const node = await fakeNode(4);
  try {
    const got = await Promise.all(
      [0, 1, 2, 3].map(() => node.attacher.attach(TARGET, () => Promise.resolve())),
    );
    assert.deepEqual(got.map((a) => a.device).sort(), [
      "/dev/nbd0",
      "/dev/nbd1",
      "/dev/nbd2",
      "/dev/nbd3",
    ]);
  } finally {
    await node.cleanup();
  }
});
