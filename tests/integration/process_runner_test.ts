/**
 * ProcessRunner against the real ZeroFS and a real S3 server (start, real 9P
 * and NBD handshakes, restart on a config change, SIGTERM stop with ZeroFS's
 * final flush); against the stand-in where a stale-record case needs a
 * process we control; and against binaries that never get ready or exit at
 * once (faults the real ZeroFS cannot be made to produce).
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { resolveSettings, volumePaths } from "../../zerofs/mod.ts";
import { type LocalS3, startS3 } from "../fixtures/s3.ts";
import { realZeroFsBin } from "../fixtures/zerofs.ts";
import { realZeroFsSpec } from "../helpers/volume_fs.ts";
import { STANDIN_BIN } from "../fixtures/zerofs_standin/mod.ts";
import { ProcessRunner } from "../../zerofs/process_runner.ts";
import { type InstanceSpec, ZeroFsNotReadyError } from "../../zerofs/mod.ts";
import { isProcessAlive, pathExists, processArgv, readProcessStat } from "../../blockdev/mod.ts";

const SECRET = "s3cret-Value-never-in-argv-42";

async function testRoot(): Promise<string> {
  const dir = `/run/zerofs-csi/test-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(join(dir, "v", "0123456789abcdef"), { recursive: true });
  return dir;
}

function makeSpec(root: string, opts: { diskSizeGb: number; readOnly?: boolean }): InstanceSpec {
  const stateDir = join(root, "v", "0123456789abcdef");
  const ninepSocket = join(stateDir, "9p.sock");
  const nbdSocket = join(stateDir, "nbd.sock");
  const configToml = `[cache]
dir = "${stateDir}/cache"
disk_size_gb = ${opts.diskSizeGb}

[storage]
url = "s3://bucket/pvc-runner"
encryption_password = "\${ZEROFS_ENCRYPTION_PASSWORD}"

[servers.ninep]
unix_socket = "${ninepSocket}"

[servers.nbd]
unix_socket = "${nbdSocket}"
`;
  const readOnly = opts.readOnly ?? false;
  return {
    volumeId: "pvc-runner",
    stateDir,
    configToml,
    configHash: createHash("sha256").update(configToml + String(readOnly)).digest("hex"),
    secretEnv: { ZEROFS_ENCRYPTION_PASSWORD: SECRET, ZEROFS_STANDIN_ROOT: join(root, "store") },
    readOnly,
    ninepSocket,
    nbdSocket,
    exportName: "",
    settings: resolveSettings({ parameters: { storageURL: "s3://bucket" } }),
    zerofsVersion: { major: 2, minor: 3, patch: 0 },
  };
}

async function readDirTexts(dir: string): Promise<string> {
  let all = "";
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && !e.name.endsWith(".log")) all += await Deno.readTextFile(join(dir, e.name));
  }
  return all;
}

/** A spec for the real ZeroFS on `s3`'s bucket `runner`. */
async function realSpec(
  root: string,
  runner: ProcessRunner,
  o: { s3: LocalS3; diskSizeGb: number },
): Promise<InstanceSpec> {
  const paths = volumePaths(root, "pvc-runner");
  await Deno.mkdir(paths.dir, { recursive: true, mode: 0o700 });
  return await realZeroFsSpec(runner, {
    volumeId: "pvc-runner",
    paths,
    storageURL: "s3://runner/v",
    s3: o.s3,
    password: SECRET,
    cacheDir: join(root, "cache"),
    cacheDiskSizeGB: o.diskSizeGb,
  });
}

Deno.test("ProcessRunner runs the real ZeroFS: ready, idempotent, restart on change, SIGTERM stop", async () => {
  const root = await testRoot();
  const s3 = await startS3({ dir: join(root, "s3") });
  await s3.createBucket("runner");
  const runner = new ProcessRunner({ zerofsBin: realZeroFsBin(), readyTimeoutMs: 60_000 });
  const spec = await realSpec(root, runner, { s3, diskSizeGb: 1 });
  try {
    let t = performance.now();
    const first = await runner.ensure(spec);
    const startMs = performance.now() - t;
    assert.equal(first.ready, true);
    assert.ok(first.pid && await isProcessAlive(first.pid));

    const cmdline = (await processArgv(first.pid!))?.join(" ") ?? "";
    assert.equal(cmdline.includes(SECRET), false, "secret in argv");
    assert.ok(cmdline.includes(join(spec.stateDir, "config.toml")));
    assert.equal(
      (await readDirTexts(spec.stateDir)).includes(SECRET),
      false,
      "secret in state files",
    );
    assert.equal((await Deno.stat(join(spec.stateDir, "config.toml"))).mode! & 0o777, 0o600);
    assert.equal((await Deno.stat(join(spec.stateDir, "zerofs.pid"))).mode! & 0o777, 0o600);

    t = performance.now();
    const again = await runner.ensure(spec);
    const idempotentMs = performance.now() - t;
    assert.equal(again.pid, first.pid, "same config → no restart");
    console.log(
      `ensure() to ready: ${startMs.toFixed(0)} ms; idempotent ensure(): ${
        idempotentMs.toFixed(1)
      } ms`,
    );

    const status = await runner.status(spec.volumeId, spec.stateDir);
    assert.deepEqual([status.running, status.ready, status.pid], [true, true, first.pid]);

    const changed = await realSpec(root, runner, { s3, diskSizeGb: 2 });
    const restarted = await runner.ensure(changed);
    assert.notEqual(restarted.pid, first.pid, "changed config → new process");
    assert.equal(await isProcessAlive(first.pid!), false, "old process stopped");
    assert.equal(restarted.configHash, changed.configHash);

    t = performance.now();
    await runner.stop(spec.volumeId, spec.stateDir);
    console.log(`stop() until ZeroFS exited: ${(performance.now() - t).toFixed(0)} ms`);
    assert.equal(await isProcessAlive(restarted.pid!), false);
    // ZeroFS's own word that it stopped on SIGTERM and flushed, not on a SIGKILL.
    const log = await Deno.readTextFile(join(spec.stateDir, "zerofs.log"));
    assert.match(log, /Received SIGTERM, shutting down gracefully/);
    assert.equal(await pathExists(spec.ninepSocket), false);
    assert.equal(await pathExists(spec.nbdSocket), false);
    assert.equal(await pathExists(join(spec.stateDir, "zerofs.pid")), false);
    await runner.stop(spec.volumeId, spec.stateDir); // idempotent
    assert.equal((await runner.status(spec.volumeId, spec.stateDir)).running, false);
  } finally {
    await runner.stop(spec.volumeId, spec.stateDir);
    await s3.stop();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("ProcessRunner: a stale record (pid now another program) starts fresh and spares that pid", async () => {
  const root = await testRoot();
  const runner = new ProcessRunner({ zerofsBin: STANDIN_BIN, readyTimeoutMs: 30_000 });
  const spec = makeSpec(root, { diskSizeGb: 1 });
  try {
    const ticks = (await readProcessStat(Deno.pid))!.startTicks;
    await Deno.writeTextFile(
      join(spec.stateDir, "zerofs.pid"),
      JSON.stringify({
        schema: 1,
        volumeId: spec.volumeId,
        pid: Deno.pid,
        startTicks: ticks,
        configHash: spec.configHash,
        configPath: join(spec.stateDir, "config.toml"),
        ninepSocket: spec.ninepSocket,
        nbdSocket: spec.nbdSocket,
        exportName: "",
        readOnly: false,
        startedAt: new Date().toISOString(),
      }),
    );
    const status = await runner.ensure(spec);
    assert.notEqual(status.pid, Deno.pid);
    assert.equal(status.ready, true);
  } finally {
    await runner.stop(spec.volumeId, spec.stateDir);
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("ProcessRunner: never ready → ZeroFsNotReadyError with the log tail, in bounded time", async () => {
  const root = await testRoot();
  const bin = join(root, "zerofs-hangs");
  await Deno.writeTextFile(
    bin,
    `#!/bin/sh\necho "hang-stand-in: loading config $3"\necho "hang-stand-in: waiting for storage forever"\n` +
      `trap 'kill $child; exit 0' TERM\nsleep 600 & child=$!\nwait\n`,
    { mode: 0o755 },
  );
  const runner = new ProcessRunner({ zerofsBin: bin, readyTimeoutMs: 1_500 });
  const spec = makeSpec(root, { diskSizeGb: 1 });
  try {
    const t = performance.now();
    const err = await runner.ensure(spec).then(() => null, (e) => e);
    const elapsedMs = performance.now() - t;
    assert.ok(err instanceof ZeroFsNotReadyError, String(err));
    assert.match(err.logTail, /waiting for storage forever/);
    assert.match(err.message, /not ready within 1500 ms/);
    assert.ok(elapsedMs < 6_000, `took ${elapsedMs} ms`);
    assert.equal(
      await pathExists(join(spec.stateDir, "zerofs.pid")),
      false,
      "failed start is cleaned up",
    );
    const status = await runner.status(spec.volumeId, spec.stateDir);
    assert.equal(status.running, false);
  } finally {
    await runner.stop(spec.volumeId, spec.stateDir);
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("ProcessRunner: a binary that exits at once fails fast with its error", async () => {
  const root = await testRoot();
  const bin = join(root, "zerofs-dies");
  await Deno.writeTextFile(bin, `#!/bin/sh\necho "✗ Error: bucket is on fire" >&2\nexit 1\n`, {
    mode: 0o755,
  });
  const runner = new ProcessRunner({ zerofsBin: bin, readyTimeoutMs: 30_000 });
  const spec = makeSpec(root, { diskSizeGb: 1 });
  try {
    const t = performance.now();
    const err = await runner.ensure(spec).then(() => null, (e) => e);
    const elapsedMs = performance.now() - t;
    assert.ok(err instanceof ZeroFsNotReadyError, String(err));
    assert.match(err.message, /exited while starting/);
    assert.match(err.logTail, /bucket is on fire/);
    assert.ok(elapsedMs < 3_000, `took ${elapsedMs} ms`);
  } finally {
    await runner.stop(spec.volumeId, spec.stateDir);
    await Deno.remove(root, { recursive: true });
  }
});
