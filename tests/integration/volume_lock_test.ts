/**
 * The per-volume lock holds across processes: while another process holds a
 * volume's lock file, the real node agent answers ABORTED at once and the
 * `attach`/`detach` verbs refuse, naming the holder; when the holder exits,
 * even by SIGKILL, the kernel drops its flock and the calls go through.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { status as grpcStatus } from "@grpc/grpc-js";
import { VolumeBusyError, VolumeFileLocks } from "../../csi/locks.ts";
import { volumePaths } from "../../zerofs/mod.ts";
import { REPO_ROOT } from "../helpers/driver.ts";
import {
  type NodeEnvironment,
  readVolumeState,
  rejectedWithoutTrace,
  runNodeCli,
  withNodeEnvironment,
} from "../helpers/node_env.ts";
import { createVolume, expectCode, nodeRequests } from "../helpers/volume_steps.ts";

const GIB = 1024 ** 3;

/** Takes one volume's lock, says "held", and keeps it until stdin closes. */
const HOLDER_SCRIPT = `
import { VolumeFileLocks } from ${JSON.stringify(join(REPO_ROOT, "csi/locks.ts"))};
const [stateRoot, volumeId] = Deno.args;
const release = await new VolumeFileLocks(stateRoot).acquire(volumeId, "lock holder test");
console.log("held");
for await (const _ of Deno.stdin.readable) { /* until EOF */ }
await release();
`;

interface Holder {
  pid: number;
  /** Close its stdin: it releases the lock and exits 0. */
  finish(): Promise<Deno.CommandStatus>;
  /** SIGKILL it: no release runs, only the kernel's. */
  kill(): Promise<Deno.CommandStatus>;
}

/** Start a second process holding `volumeId`'s lock; resolves once it says so. */
async function holdLockInChild(env: NodeEnvironment, volumeId: string): Promise<Holder> {
  const script = join(env.dir, "hold_volume_lock.ts");
  await Deno.writeTextFile(script, HOLDER_SCRIPT);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", join(REPO_ROOT, "deno.json"), script, env.stateDir, volumeId],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!out.includes("held\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`lock holder exited before taking the lock: ${out}`);
    out += value;
  }
  await reader.cancel();
  return {
    pid: child.pid,
    finish: async () => {
      await child.stdin.close();
      return await child.status;
    },
    kill: async () => {
      child.kill("SIGKILL");
      await child.stdin.close().catch(() => {});
      return await child.status;
    },
  };
}

/** The kernel's record of `pid`'s exclusive flocks (flock, not fcntl: dropped on exit). */
async function flocksOf(pid: number): Promise<string[]> {
  const locks = await Deno.readTextFile("/proc/locks");
  return locks.split("\n").filter((l) =>
    /FLOCK\s+ADVISORY\s+WRITE/.test(l) && l.includes(` ${pid} `)
  );
}

Deno.test("a volume lock held by another process is named and refused, then freed on exit", async () => {
  const stateRoot = await Deno.makeTempDir();
  try {
    const locks = new VolumeFileLocks(stateRoot);
    const release = await locks.acquire("pvc-a", "NodeStageVolume");
    // A second open file description is a second holder, even in this process.
    const busy = await locks.acquire("pvc-a", "attach verb").then(
      () => assert.fail("second acquire succeeded"),
      (e) => e,
    );
    assert.ok(busy instanceof VolumeBusyError, String(busy));
    assert.equal(busy.holder, `pid ${Deno.pid}, NodeStageVolume`);
    assert.match(
      busy.message,
      /^volume pvc-a is busy: another process \(pid \d+, NodeStageVolume\)/,
    );
    // Another volume is not affected.
    await (await locks.acquire("pvc-b", "NodeStageVolume"))();
    await release();
    await release();
    await (await locks.acquire("pvc-a", "attach verb"))();
    assert.equal(await Deno.readTextFile(volumePaths(stateRoot, "pvc-a").lockFile), "");
  } finally {
    await Deno.remove(stateRoot, { recursive: true });
  }
});

Deno.test("the node agent and the attach/detach verbs refuse a volume another process holds", async () => {
  await withNodeEnvironment(async (env) => {
    const volume = await createVolume(env.controller.client, {
      name: "pvc-locked",
      kind: "ext4",
      sizeBytes: GIB,
    });
    const req = nodeRequests(volume, { kind: "ext4", kubeletDir: env.kubeletDir });
    const holderRe = (pid: number) => new RegExp(`\\(pid ${pid}, lock holder test\\)`);

    // Held while nothing is staged: the agent's stage and the attach verb both refuse.
    const first = await holdLockInChild(env, "pvc-locked");
    assert.equal((await flocksOf(first.pid)).length, 1, "the holder has one flock");
    const details = await rejectedWithoutTrace(
      env,
      () => env.node.client.node.NodeStageVolume(req.stage),
      grpcStatus.ABORTED,
      /volume pvc-locked is busy: another process .*; retry later/,
    );
    assert.match(details, holderRe(first.pid));
    const attach = await runNodeCli(env, [
      "attach",
      "--state-dir",
      env.stateDir,
      "--settings-file",
      env.settingsFile,
      "--kubelet-dir",
      env.kubeletDir,
      "--volume-id",
      "pvc-locked",
      "--staging-path",
      req.staging,
      "--fs-type",
      "ext4",
    ]);
    assert.equal(attach.code, 1, attach.stderr);
    assert.match(
      attach.stderr,
      /volume pvc-locked is busy: the node agent or another verb is working on it/,
    );
    assert.match(attach.stderr, holderRe(first.pid));
    assert.equal(await readVolumeState(env, "pvc-locked"), null, "nothing was staged");
    assert.equal((await first.finish()).code, 0);

    // Released: the same call goes through.
    await env.node.client.node.NodeStageVolume(req.stage);
    assert.equal((await readVolumeState(env, "pvc-locked"))?.phase, "staged");

    // Held while staged: unstage and the detach verb refuse and leave it staged.
    const second = await holdLockInChild(env, "pvc-locked");
    const refused = await expectCode(
      env.node.client.node.NodeUnstageVolume(req.unstage),
      grpcStatus.ABORTED,
      /volume pvc-locked is busy/,
    );
    assert.match(refused.details, holderRe(second.pid));
    const detach = await runNodeCli(env, [
      "detach",
      "--state-dir",
      env.stateDir,
      "--volume-id",
      "pvc-locked",
    ]);
    assert.equal(detach.code, 1, detach.stderr);
    assert.match(detach.stderr, /volume pvc-locked is busy: the node agent or another verb/);
    assert.equal((await readVolumeState(env, "pvc-locked"))?.phase, "staged");

    // A holder that dies without releasing frees the volume: the kernel drops its flock.
    const killed = await second.kill();
    assert.equal(killed.signal, "SIGKILL");
    assert.deepEqual(await flocksOf(second.pid), []);
    await env.node.client.node.NodeUnstageVolume(req.unstage);
    assert.equal(await readVolumeState(env, "pvc-locked"), null);
  });
});
