import assert from "node:assert/strict";
import { join } from "node:path";
import { Code, CsiError } from "../errors.ts";
import { checkPrivateVolumeFiles } from "./private_files.ts";

async function withVolumeDir(
  fn: (paths: { dir: string; ninepSocket: string; nbdSocket: string }) => Promise<void>,
) {
  const dir = await Deno.makeTempDir({ dir: "/run" });
  await Deno.chmod(dir, 0o700);
  const paths = { dir, ninepSocket: join(dir, "9p.sock"), nbdSocket: join(dir, "nbd.sock") };
  const listeners = [paths.ninepSocket, paths.nbdSocket].map((path) =>
    Deno.listen({ transport: "unix", path })
  );
  try {
    for (const p of [paths.ninepSocket, paths.nbdSocket]) await Deno.chmod(p, 0o700);
    await fn(paths);
  } finally {
    for (const l of listeners) l.close();
    await Deno.remove(dir, { recursive: true });
  }
}

async function refusal(call: Promise<void>): Promise<CsiError> {
  const err = await call.then(() => null, (e) => e);
  assert.ok(err instanceof CsiError, String(err));
  assert.equal(err.code, Code.FAILED_PRECONDITION);
  return err;
}

Deno.test("private volume files: 0700 directory and sockets pass", async () => {
  await withVolumeDir((paths) => checkPrivateVolumeFiles(paths, { volumeId: "pvc-p" }));
});

Deno.test("private volume files: a wider directory or socket is refused, naming path and mode", async () => {
  await withVolumeDir(async (paths) => {
    await Deno.chmod(paths.dir, 0o755);
    const dirErr = await refusal(checkPrivateVolumeFiles(paths, { volumeId: "pvc-p" }));
    assert.ok(dirErr.message.includes(`${paths.dir} is a directory of mode 0755`), dirErr.message);
    await Deno.chmod(paths.dir, 0o700);
    await Deno.chmod(paths.nbdSocket, 0o755);
    const sockErr = await refusal(checkPrivateVolumeFiles(paths, { volumeId: "pvc-p" }));
    assert.ok(sockErr.message.includes(`${paths.nbdSocket} is a socket of mode 0755`));
    const other = await refusal(checkPrivateVolumeFiles(paths, { volumeId: "pvc-p", uid: 4242 }));
    assert.match(other.message, /owned by uid 4242/);
    // Pod mode: the agent tightens a socket it owns instead.
    await checkPrivateVolumeFiles(paths, { volumeId: "pvc-p", tightenSockets: true });
    assert.equal((await Deno.lstat(paths.nbdSocket)).mode! & 0o777, 0o700);
  });
});
