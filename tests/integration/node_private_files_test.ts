/**
 * What a staged volume leaves readable on the host, with the real ZeroFS:
 * the state root, the volume's directory and its files are root's alone
 * (ZeroFS's 9P and NBD sockets have no authentication), and ZeroFS runs with
 * a minimal environment — none of the agent's other variables.
 *
 * Run as root: `deno test -A tests/integration/node_private_files_test.ts`.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { volumePaths } from "../../zerofs/mod.ts";
import { makeTestDir } from "../helpers/driver.ts";
import {
  assertNothingLeft,
  TEST_ENCRYPTION_PASSWORD,
  withNodeEnvironment,
  zerofsPid,
} from "../helpers/node_env.ts";
import { createVolume, nodeRequests } from "../helpers/volume_steps.ts";

const GiB = 1024 ** 3;
const MARKER = "ZCSI_TEST_MARKER_NOT_FOR_ZEROFS";

async function modeOf(path: string): Promise<{ mode: string; uid: number; socket: boolean }> {
  const info = await Deno.lstat(path);
  return {
    mode: ((info.mode ?? 0) & 0o7777).toString(8).padStart(4, "0"),
    uid: info.uid ?? -1,
    socket: info.isSocket ?? false,
  };
}

async function environOf(pid: number): Promise<Map<string, string>> {
  const raw = await Deno.readTextFile(`/proc/${pid}/environ`);
  return new Map(
    raw.split("\0").filter(Boolean).map((
      kv,
    ) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
  );
}

Deno.test("node: state root, volume directory, its files and ZeroFS's sockets are root's alone; ZeroFS gets a minimal environment", async () => {
  const dir = await makeTestDir();
  const stateDir = join(dir, "state");
  // As kubelet's DirectoryOrCreate hostPath leaves it.
  await Deno.mkdir(join(stateDir, "v"), { recursive: true });
  await Deno.chmod(stateDir, 0o755);
  await Deno.chmod(join(stateDir, "v"), 0o755);
  await withNodeEnvironment(async (env) => {
    assert.equal(env.stateDir, stateDir);
    assert.equal((await modeOf(stateDir)).mode, "0700", "state root tightened at start");
    assert.equal((await modeOf(join(stateDir, "v"))).mode, "0700");

    const name = "pvc-private";
    const volume = await createVolume(env.controller.client, {
      name,
      kind: "ext4",
      sizeBytes: GiB,
    });
    const req = nodeRequests(volume, { kind: "ext4", kubeletDir: env.kubeletDir });
    await env.node.client.node.NodeStageVolume(req.stage);

    const paths = volumePaths(stateDir, name);
    const seen = {
      root: await modeOf(stateDir),
      v: await modeOf(join(stateDir, "v")),
      volumeDir: await modeOf(paths.dir),
      configToml: await modeOf(paths.configToml),
      stateJson: await modeOf(paths.stateJson),
      ninepSocket: await modeOf(paths.ninepSocket),
      nbdSocket: await modeOf(paths.nbdSocket),
    };
    const owner = Deno.uid();
    assert.deepEqual(seen, {
      root: { mode: "0700", uid: owner, socket: false },
      v: { mode: "0700", uid: owner, socket: false },
      volumeDir: { mode: "0700", uid: owner, socket: false },
      configToml: { mode: "0600", uid: owner, socket: false },
      stateJson: { mode: "0600", uid: owner, socket: false },
      // The real ZeroFS under the launcher's umask 077.
      ninepSocket: { mode: "0700", uid: owner, socket: true },
      nbdSocket: { mode: "0700", uid: owner, socket: true },
    });

    const environ = await environOf(await zerofsPid(env, name));
    assert.ok(!environ.has(MARKER), `the agent's ${MARKER} leaked into ZeroFS`);
    assert.ok(environ.has("PATH") && environ.has("HOME"));
    assert.equal(environ.get("ZEROFS_ENCRYPTION_PASSWORD"), TEST_ENCRYPTION_PASSWORD);
    assert.equal(environ.get("AWS_ACCESS_KEY_ID"), env.s3.accessKeyId);
    assert.equal(environ.get("AWS_SECRET_ACCESS_KEY"), env.s3.secretAccessKey);
    // The passed few (PATH, HOME, TLS trust, …), the secrets, and what bash itself sets.
    const passed = ["PATH", "HOME", "RUST_LOG", "RUST_BACKTRACE", "SSL_CERT_FILE", "SSL_CERT_DIR"];
    const unexpected = [...environ.keys()].filter((k) =>
      ![...passed, "PWD", "SHLVL", "_"].includes(k) && !k.startsWith("ZEROFS_") &&
      !k.startsWith("AWS_")
    );
    assert.deepEqual(unexpected, []);

    await env.node.client.node.NodeUnstageVolume(req.unstage);
    await assertNothingLeft(env);
  }, { dir, env: { [MARKER]: "agent-only" } });
});
