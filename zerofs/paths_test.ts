import assert from "node:assert/strict";
import {
  checkSocketPath,
  nodeLockPath,
  POD_STATE_DIR,
  rotatedLogPath,
  stateDirFiles,
  volumeCacheDir,
  volumeDirName,
  volumeDirsRoot,
  volumePaths,
} from "./paths.ts";

Deno.test("volumePaths: a hashed state directory with its files, the lock beside it", () => {
  const name = volumeDirName("pvc-1");
  assert.match(name, /^[0-9a-f]{16}$/);
  assert.deepEqual(volumePaths("/var/lib/zerofs-csi", "pvc-1"), {
    dir: `/var/lib/zerofs-csi/v/${name}`,
    configToml: `/var/lib/zerofs-csi/v/${name}/config.toml`,
    stateJson: `/var/lib/zerofs-csi/v/${name}/state.json`,
    ninepSocket: `/var/lib/zerofs-csi/v/${name}/9p.sock`,
    nbdSocket: `/var/lib/zerofs-csi/v/${name}/nbd.sock`,
    zerofsPid: `/var/lib/zerofs-csi/v/${name}/zerofs.pid`,
    zerofsLog: `/var/lib/zerofs-csi/v/${name}/zerofs.log`,
    lockFile: `/var/lib/zerofs-csi/locks/${name}.lock`,
  });
  assert.equal(volumeDirsRoot("/s"), "/s/v");
  assert.equal(nodeLockPath("/s"), "/s/node.lock");
});

Deno.test("the pod sees the same file names in its mount of the state directory", () => {
  const host = volumePaths("/s", "pvc-1");
  const pod = stateDirFiles(POD_STATE_DIR);
  for (const key of Object.keys(pod) as (keyof typeof pod)[]) {
    assert.equal(pod[key].slice(POD_STATE_DIR.length), host[key].slice(host.dir.length), key);
  }
  assert.equal(pod.configToml, "/zerofs/config.toml");
});

Deno.test("the per-volume cache directory and the rotated log", () => {
  const dir = volumePaths("/s", "pvc-1").dir;
  assert.equal(volumeCacheDir("/cache", dir), `/cache/${volumeDirName("pvc-1")}`);
  assert.equal(volumeCacheDir("", dir), `${dir}/cache/${volumeDirName("pvc-1")}`);
  assert.equal(rotatedLogPath("/s/zerofs.log"), "/s/zerofs.log.1");
});

Deno.test("checkSocketPath refuses a path longer than sun_path", () => {
  checkSocketPath(volumePaths("/var/lib/zerofs-csi", "x".repeat(128)).nbdSocket);
  assert.throws(() => checkSocketPath("/" + "d".repeat(107)), /108 bytes; the kernel allows 107/);
});
