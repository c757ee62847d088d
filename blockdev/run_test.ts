import assert from "node:assert/strict";
import { runTool, ToolError } from "./run.ts";

Deno.test("runTool returns output of a successful tool", async () => {
  const result = await runTool("true", []);
  assert.equal(result.exitCode, 0);
});

Deno.test("runTool throws ToolError with the exit code", async () => {
  const error = await runTool("false", []).catch((e) => e);
  assert.ok(error instanceof ToolError);
  assert.equal(error.exitCode, 1);
  assert.equal(error.tool, "false");
});

Deno.test("runTool accepts listed exit codes", async () => {
  assert.equal((await runTool("false", [], { okExitCodes: [1] })).exitCode, 1);
});

Deno.test("runTool kills a tool past its timeout", async () => {
  const started = Date.now();
  const error = await runTool("sleep", ["10"], { timeoutMs: 100 }).catch((e) => e);
  assert.ok(error instanceof ToolError && error.timedOut);
  assert.ok(Date.now() - started < 5_000);
});

Deno.test("runTool names a missing tool", async () => {
  const error = await runTool("no-such-tool-zerofs", []).catch((e) => e);
  assert.ok(error instanceof ToolError);
  assert.equal(error.exitCode, null);
  assert.match(error.message, /no-such-tool-zerofs could not be started/);
});
