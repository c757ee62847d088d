/**
 * The ZeroFS stand-in behaves like ZeroFS where the driver depends on it:
 * command line, config validation, listening lines, real 9P and NBD service,
 * persistence across restarts, read-only readers, clean SIGTERM, and no
 * server left behind even after SIGKILL.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { STANDIN_BIN } from "../fixtures/zerofs_standin/mod.ts";
import { listNbdExports, NBD_FLAG_READ_ONLY, probeNbdExport } from "../../zerofs/nbd_probe.ts";
import { NinepClient, ninepHandshake } from "../../zerofs/ninep/mod.ts";
import { isProcessAlive, pathExists, pollUntil } from "../../blockdev/mod.ts";
import { listProcesses } from "../helpers/node_env.ts";

const PASSWORD = "stand-in-secret-1";
const START_TIMEOUT_MS = 20_000;

interface Sandbox {
  dir: string;
  configPath: string;
  ninepSocket: string;
  nbdSocket: string;
  env: Record<string, string>;
}

async function sandbox(): Promise<Sandbox> {
  const dir = `/run/zerofs-csi/test-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(dir, { recursive: true });
  const s = {
    dir,
    configPath: join(dir, "config.toml"),
    ninepSocket: join(dir, "9p.sock"),
    nbdSocket: join(dir, "nbd.sock"),
    env: { ZEROFS_STANDIN_ROOT: join(dir, "store"), TEST_PW: PASSWORD },
  };
  await Deno.writeTextFile(s.configPath, config(s));
  return s;
}

function config(s: Sandbox, extra = ""): string {
  return `[cache]
dir = "${s.dir}/cache"
disk_size_gb = 1.5

[storage]
url = "s3://bucket/volumes/pvc-standin"
encryption_password = "\${TEST_PW}"

[servers.ninep]
unix_socket = "${s.ninepSocket}"

[servers.nbd]
unix_socket = "${s.nbdSocket}"
${extra}`;
}

function storeData(s: Sandbox): string {
  return join(s.dir, "store", "s3", "bucket", "volumes", "pvc-standin", "data");
}

async function runToExit(s: Sandbox, args: string[], env = s.env) {
  const out = await new Deno.Command(STANDIN_BIN, { args, env, stdout: "piped", stderr: "piped" })
    .output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

interface Running {
  pid: number;
  child: Deno.ChildProcess;
  log(): string;
  stop(sig?: Deno.Signal): Promise<Deno.CommandStatus>;
}

async function start(s: Sandbox, extraArgs: string[] = []): Promise<Running> {
  const child = new Deno.Command(STANDIN_BIN, {
    args: ["run", "-c", s.configPath, ...extraArgs],
    env: s.env,
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let text = "";
  const reading = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) text += decoder.decode(chunk, { stream: true });
  })();
  const running: Running = {
    pid: child.pid,
    child,
    log: () => text,
    async stop(sig: Deno.Signal = "SIGTERM") {
      try {
        child.kill(sig);
      } catch { /* exited */ }
      const status = await child.status;
      await reading;
      return status;
    },
  };
  const listening = () =>
    text.includes("NBD server listening") && text.includes("9P server listening") || undefined;
  if (!await pollUntil(listening, { timeoutMs: START_TIMEOUT_MS })) {
    await running.stop("SIGKILL");
    throw new Error(`stand-in did not start:\n${text}`);
  }
  return running;
}

/** Pids whose parent is `pid`. */
async function childrenOf(pid: number): Promise<number[]> {
  return (await listProcesses()).filter((p) => p.ppid === pid).map((p) => p.pid);
}

/** Those of `pids` still alive after waiting up to `timeoutMs` for all to exit. */
async function waitGone(pids: number[], timeoutMs: number): Promise<number[]> {
  const alive = async () => {
    const left = [];
    for (const pid of pids) if (await isProcessAlive(pid)) left.push(pid);
    return left;
  };
  const allGone = async () => (await alive()).length === 0 || undefined;
  return await pollUntil(allGone, { timeoutMs }) ? [] : await alive();
}

Deno.test("stand-in: bad arguments exit 2, run errors exit 1 with ✗ Error", async () => {
  const s = await sandbox();
  try {
    assert.equal((await runToExit(s, ["run"])).code, 2);
    assert.equal((await runToExit(s, ["run", "-c", s.configPath, "--bogus"])).code, 2);
    const both = await runToExit(s, [
      "run",
      "-c",
      s.configPath,
      "--read-only",
      "--checkpoint",
      "c",
    ]);
    assert.equal(both.code, 2);
    await Deno.writeTextFile(s.configPath, config(s, "\n[lsm]\nbogus_key = 1\n"));
    const unknown = await runToExit(s, ["run", "-c", s.configPath]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /^✗ Error:.*\n.*unknown field `bogus_key`/m);
    await Deno.writeTextFile(s.configPath, config(s));
    const unset = await runToExit(s, ["run", "-c", s.configPath], {
      ZEROFS_STANDIN_ROOT: s.env.ZEROFS_STANDIN_ROOT,
    });
    assert.equal(unset.code, 1);
    assert.match(unset.stderr, /✗ Error:[\s\S]*TEST_PW/);
    const reader = await runToExit(s, ["run", "-c", s.configPath, "--read-only"]);
    assert.equal(reader.code, 1, "a reader cannot initialise a new volume");
    assert.match(reader.stderr, /✗ Error: a read-only instance cannot initialise/);
    assert.equal(await pathExists(join(storeData(s), ".nbd")), false);
  } finally {
    await Deno.remove(s.dir, { recursive: true });
  }
});

Deno.test("stand-in: serves 9P and NBD, keeps data across restarts, SIGTERM exits 0 cleanly", async () => {
  const s = await sandbox();
  let server: Running | undefined;
  try {
    server = await start(s);
    assert.match(server.log(), /TEST STAND-IN for ZeroFS/);
    assert.match(server.log(), new RegExp(`NBD server listening on Unix socket ${s.nbdSocket}`));
    assert.match(server.log(), new RegExp(`9P server listening on Unix socket ${s.ninepSocket}`));
    assert.equal((await Deno.stat(join(storeData(s), ".nbd"))).mode! & 0o777, 0o755);
    assert.deepEqual(await listNbdExports(s.nbdSocket, { timeoutMs: 2000 }), []);
    const client = await NinepClient.connect(s.ninepSocket, { timeoutMs: 2000 });
    try {
      await client.writeFile("/.nbd/disk", new Uint8Array(65536).fill(7), { mode: 0o600 });
      await client.writeFile("/.zerofs-csi.json", new TextEncoder().encode('{"v":1}'), {
        mode: 0o600,
      });
    } finally {
      await client.close();
    }
    assert.equal((await Deno.stat(join(storeData(s), ".nbd", "disk"))).size, 65536);
    const info = await probeNbdExport(s.nbdSocket, { exportName: "disk", timeoutMs: 2000 });
    assert.equal(info.sizeBytes, 65536);
    assert.equal(info.flags & NBD_FLAG_READ_ONLY, 0);
    const children = await childrenOf(server.pid);
    assert.equal(children.length, 2, "diod and nbdkit");
    const status = await server.stop("SIGTERM");
    server = undefined;
    assert.equal(status.code, 0);
    assert.deepEqual(await waitGone(children, 1000), [], "no child left after SIGTERM");
    assert.equal(await pathExists(s.nbdSocket), false);
    assert.equal(await pathExists(s.ninepSocket), false);

    server = await start(s);
    assert.equal(
      (await probeNbdExport(s.nbdSocket, { exportName: "disk", timeoutMs: 2000 })).sizeBytes,
      65536,
    );
    const again = await NinepClient.connect(s.ninepSocket, { timeoutMs: 2000 });
    try {
      const record = await again.readFile("/.zerofs-csi.json", { maxBytes: 1024 });
      assert.equal(new TextDecoder().decode(record), '{"v":1}');
    } finally {
      await again.close();
    }
  } finally {
    await server?.stop();
    await Deno.remove(s.dir, { recursive: true });
  }
});

Deno.test("stand-in: a reader serves read-only and creates no .nbd; wrong password fails", async () => {
  const s = await sandbox();
  let server: Running | undefined;
  try {
    server = await start(s);
    await server.stop();
    server = undefined;
    await Deno.remove(join(storeData(s), ".nbd"));
    server = await start(s, ["--read-only"]);
    assert.equal(await pathExists(join(storeData(s), ".nbd")), false);
    assert.deepEqual(await listNbdExports(s.nbdSocket, { timeoutMs: 2000 }), []);
    await server.stop();
    server = undefined;

    await Deno.mkdir(join(storeData(s), ".nbd"));
    await Deno.writeFile(join(storeData(s), ".nbd", "disk"), new Uint8Array(8192));
    server = await start(s, ["--read-only"]);
    const info = await probeNbdExport(s.nbdSocket, { exportName: "disk", timeoutMs: 2000 });
    assert.equal(info.flags & NBD_FLAG_READ_ONLY, NBD_FLAG_READ_ONLY);
    await ninepHandshake(s.ninepSocket, { timeoutMs: 2000 });
    const client = await NinepClient.connect(s.ninepSocket, { timeoutMs: 2000 });
    try {
      await assert.rejects(
        client.writeFile("/new-file", new Uint8Array(1), { mode: 0o600 }),
        "a reader must refuse writes over 9P",
      );
    } finally {
      await client.close();
    }
    await server.stop();
    server = undefined;

    const wrong = await runToExit(s, ["run", "-c", s.configPath], {
      ...s.env,
      TEST_PW: "another-password",
    });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /✗ Error: .*wrong encryption password/);
    assert.equal(wrong.stderr.includes("another-password"), false);
  } finally {
    await server?.stop();
    await Deno.remove(s.dir, { recursive: true });
  }
});

Deno.test("stand-in: after SIGKILL neither diod nor nbdkit keeps serving", async () => {
  const s = await sandbox();
  let server: Running | undefined;
  try {
    server = await start(s);
    const children = await childrenOf(server.pid);
    assert.equal(children.length, 2);
    await server.stop("SIGKILL");
    server = undefined;
    assert.deepEqual(await waitGone(children, 3000), [], "children must die with the stand-in");
    await assert.rejects(listNbdExports(s.nbdSocket, { timeoutMs: 500 }));
    await assert.rejects(ninepHandshake(s.ninepSocket, { timeoutMs: 500 }));
  } finally {
    await server?.stop("SIGKILL");
    await Deno.remove(s.dir, { recursive: true });
  }
});
