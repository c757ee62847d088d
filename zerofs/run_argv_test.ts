import assert from "node:assert/strict";
import { zerofsConfigOf, zerofsRunArgs } from "./run_argv.ts";

Deno.test("zerofsConfigOf reads only a `run` argv", () => {
  assert.equal(zerofsConfigOf(["zerofs", "run", "--config", "/a/c.toml"]), "/a/c.toml");
  assert.equal(zerofsConfigOf(["zerofs", "nbd", "-c", "/a/c.toml"]), undefined);
  assert.equal(zerofsConfigOf(["zerofs", "run"]), undefined);
});

Deno.test("zerofsConfigOf reads back what zerofsRunArgs builds, reader or writer", () => {
  for (const readOnly of [false, true]) {
    assert.equal(
      zerofsConfigOf(["zerofs", ...zerofsRunArgs("/v/x/c.toml", readOnly)]),
      "/v/x/c.toml",
    );
  }
});

Deno.test("zerofsConfigOf skips a wrapper's own options before `run`", () => {
  const wrapped = [
    "deno",
    "run",
    "-A",
    "--config",
    "/repo/deno.json",
    "/s/main.ts",
    "run",
    "-c",
    "/v/c.toml",
  ];
  assert.equal(zerofsConfigOf(wrapped), "/v/c.toml");
});
