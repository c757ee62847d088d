import assert from "node:assert/strict";
import { NodeLock } from "./lock.ts";
import { isKernelModuleAvailable, selectAttacher } from "./select.ts";
import type { Runner } from "./run.ts";
import { recordingRunner } from "./testing.ts";

async function withDirs(fn: (dirs: { dev: string; sys: string; lock: NodeLock }) => Promise<void>) {
  await Deno.mkdir("/run/zerofs-csi", { recursive: true });
  const root = await Deno.makeTempDir({ dir: "/run/zerofs-csi", prefix: "test-" });
  try {
    await Deno.mkdir(`${root}/dev`);
    await Deno.mkdir(`${root}/sys/module`, { recursive: true });
    await fn({ dev: `${root}/dev`, sys: `${root}/sys`, lock: new NodeLock(`${root}/lock`) });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

/** `auto` mode against the fake /dev and /sys of `withDirs`. */
function selectAuto(dirs: { dev: string; sys: string; lock: NodeLock }, runner: Runner) {
  return selectAttacher({
    mode: "auto",
    lock: dirs.lock,
    runner,
    devRoot: dirs.dev,
    sysRoot: dirs.sys,
  });
}

Deno.test("auto picks kernel when /dev/nbd0 exists, without asking modprobe", async () => {
  await withDirs(async ({ dev, sys, lock }) => {
    await Deno.writeTextFile(`${dev}/nbd0`, "");
    const { runner, calls } = recordingRunner();
    const attacher = await selectAuto({ dev, sys, lock }, runner);
    assert.equal(attacher.mode, "kernel");
    assert.equal(calls.length, 0);
  });
});

Deno.test("auto asks modprobe -n -q nbd and picks userspace on exit 1", async () => {
  await withDirs(async ({ dev, sys, lock }) => {
    const { runner, calls } = recordingRunner([{ exitCode: 1 }]);
    const attacher = await selectAuto({ dev, sys, lock }, runner);
    assert.equal(attacher.mode, "userspace");
    assert.deepEqual(calls.map((c) => [c.tool, ...c.args]), [["modprobe", "-n", "-q", "nbd"]]);
  });
});

Deno.test("auto loads nbd and picks kernel when modprobe can load it", async () => {
  await withDirs(async ({ dev, sys, lock }) => {
    const { runner, calls } = recordingRunner([{ exitCode: 0 }, { exitCode: 0 }]);
    const attacher = await selectAuto({ dev, sys, lock }, runner);
    assert.equal(attacher.mode, "kernel");
    assert.deepEqual(calls.map((c) => [c.tool, ...c.args]), [
      ["modprobe", "-n", "-q", "nbd"],
      ["modprobe", "-q", "nbd"],
    ]);
  });
});

Deno.test("auto falls back to userspace when the module is found but will not load", async () => {
  await withDirs(async ({ dev, sys, lock }) => {
    const { runner } = recordingRunner([{ exitCode: 0 }, { exitCode: 1 }]);
    const attacher = await selectAuto({ dev, sys, lock }, runner);
    assert.equal(attacher.mode, "userspace");
  });
});

Deno.test("explicit modes are honoured", async () => {
  await withDirs(async ({ lock }) => {
    assert.equal((await selectAttacher({ mode: "kernel", lock })).mode, "kernel");
    assert.equal((await selectAttacher({ mode: "userspace", lock })).mode, "userspace");
  });
});

Deno.test("modprobe failing otherwise (exit 2) throws instead of guessing", async () => {
  const { runner } = recordingRunner([{ exitCode: 2, stderr: "bad" }]);
  await assert.rejects(isKernelModuleAvailable("nbd", { runner }), /modprobe exited with code 2/);
});

Deno.test("this host: auto selects userspace (no nbd module here)", async () => {
  const attacher = await selectAttacher({ mode: "auto", lock: new NodeLock("/run/zerofs-csi/x") });
  assert.equal(attacher.mode, "userspace");
});
