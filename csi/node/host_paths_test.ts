import assert from "node:assert/strict";
import { join } from "node:path";
import { CsiError } from "../errors.ts";
import {
  kubeletDirProblem,
  makeDirNoFollow,
  makeFileNoFollow,
  parseKubeletPath,
} from "./host_paths.ts";

async function withDirs(fn: (kubelet: string, outside: string) => Promise<void>) {
  const root = await Deno.makeTempDir();
  const kubelet = join(root, "kubelet");
  const outside = join(root, "outside");
  await Deno.mkdir(kubelet);
  await Deno.mkdir(outside);
  try {
    await fn(kubelet, outside);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

async function refused(work: Promise<unknown>, re: RegExp): Promise<void> {
  await assert.rejects(work, (e) => {
    assert(e instanceof CsiError);
    assert.equal(e.code, 3, "INVALID_ARGUMENT");
    assert.match(e.message, re);
    return true;
  });
}

async function names(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
}

Deno.test("parseKubeletPath: only strictly below the kubelet dir", async () => {
  await withDirs(async (kubelet) => {
    const p = join(kubelet, "pods/p/volumes/v");
    assert.equal(await parseKubeletPath(p, "target_path", kubelet), p);
    for (const bad of ["/etc/x", kubelet, `${kubelet}-other/x`, "/"]) {
      await refused(parseKubeletPath(bad, "target_path", kubelet), /target_path/);
    }
    await refused(
      parseKubeletPath(`${kubelet}-other/x`, "staging_target_path", kubelet),
      new RegExp(`staging_target_path ".*" is not inside the kubelet directory ${kubelet}`),
    );
  });
});

Deno.test("parseKubeletPath: a symlink in any component below the kubelet dir is refused", async () => {
  await withDirs(async (kubelet, outside) => {
    await Deno.mkdir(join(kubelet, "pods"));
    await Deno.symlink(outside, join(kubelet, "pods", "link"));
    await refused(
      parseKubeletPath(join(kubelet, "pods/link/volumes/v"), "target_path", kubelet),
      /pods\/link is a symlink/,
    );
    await refused(
      parseKubeletPath(join(kubelet, "pods/link"), "target_path", kubelet),
      /is a symlink/,
    );
    // A dangling link is refused too.
    await Deno.symlink(join(outside, "nothing"), join(kubelet, "pods", "dangling"));
    await refused(
      parseKubeletPath(join(kubelet, "pods/dangling/x"), "target_path", kubelet),
      /is a symlink/,
    );
  });
});

Deno.test("makeDirNoFollow and makeFileNoFollow never write through a symlink", async () => {
  await withDirs(async (kubelet, outside) => {
    await makeDirNoFollow(join(kubelet, "a/b/c"), "target_path", kubelet);
    assert.equal((await Deno.lstat(join(kubelet, "a/b/c"))).isDirectory, true);
    await makeDirNoFollow(join(kubelet, "a/b/c"), "target_path", kubelet); // idempotent

    await Deno.symlink(outside, join(kubelet, "a/link"));
    await refused(makeDirNoFollow(join(kubelet, "a/link/x"), "target_path", kubelet), /symlink/);
    await refused(makeDirNoFollow(join(kubelet, "a/link"), "target_path", kubelet), /symlink/);
    await refused(makeFileNoFollow(join(kubelet, "a/link/dev"), "target_path", kubelet), /symlink/);
    await Deno.symlink(join(outside, "dev"), join(kubelet, "a/dev-link"));
    await refused(makeFileNoFollow(join(kubelet, "a/dev-link"), "target_path", kubelet), /symlink/);
    assert.deepEqual(await names(outside), []);

    await Deno.writeTextFile(join(kubelet, "a/file"), "");
    await refused(
      makeDirNoFollow(join(kubelet, "a/file/x"), "target_path", kubelet),
      /not a directory/,
    );
    await makeFileNoFollow(join(kubelet, "b/dev"), "target_path", kubelet);
    assert.equal((await Deno.lstat(join(kubelet, "b/dev"))).isFile, true);
    await makeFileNoFollow(join(kubelet, "b/dev"), "target_path", kubelet); // idempotent
  });
});

Deno.test("kubeletDirProblem: absolute and normalized", () => {
  assert.equal(kubeletDirProblem("/var/lib/kubelet"), null);
  assert.match(kubeletDirProblem("var/lib/kubelet") ?? "", /absolute/);
  assert.match(kubeletDirProblem("/var/lib/kubelet/") ?? "", /normalized/);
  assert.match(kubeletDirProblem("/") ?? "", /must not be/);
});
