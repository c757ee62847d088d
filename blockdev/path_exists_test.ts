import assert from "node:assert/strict";
import { pathExists } from "./path_exists.ts";

Deno.test("pathExists: files and directories, absent paths, dangling symlinks", async () => {
  const dir = await Deno.makeTempDir({ prefix: "path-exists-" });
  try {
    await Deno.writeTextFile(`${dir}/file`, "x");
    await Deno.symlink(`${dir}/gone`, `${dir}/dangling`);
    assert.equal(await pathExists(dir), true);
    assert.equal(await pathExists(`${dir}/file`), true);
    assert.equal(await pathExists(`${dir}/missing`), false);
    assert.equal(await pathExists(`${dir}/dangling`), false);
    assert.equal(await pathExists(`${dir}/dangling`, { followSymlinks: false }), true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pathExists: an error other than not-found is thrown, not read as absent", async () => {
  const dir = await Deno.makeTempDir({ prefix: "path-exists-" });
  try {
    await Deno.writeTextFile(`${dir}/file`, "x");
    // A path through a regular file fails with ENOTDIR, which is not "not found".
    await assert.rejects(pathExists(`${dir}/file/below`), Deno.errors.NotADirectory);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
