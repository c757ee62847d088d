import assert from "node:assert/strict";
import { createServer } from "node:net";
import { pollUntil } from "./poll.ts";
import { processArgv } from "./process.ts";
import { runTool, spawnDetached, ToolError } from "./run.ts";

/** Wait until `pid` has exec'd `program` (spawnDetached starts it through a shell). */
async function waitForExec(pid: number, program: string): Promise<void> {
  const execd = async () => (await processArgv(pid))?.[0] === program || undefined;
  assert.ok(await pollUntil(execd, { timeoutMs: 5_000 }), `${pid} never became ${program}`);
}

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

Deno.test("spawnDetached hands the child no descriptor but stdio (not the CSI socket)", async () => {
  const dir = await Deno.makeTempDir({ dir: "/run" });
  // A node:net listener is what grpc-js serves on; Deno creates it without close-on-exec.
  const server = createServer().listen(`${dir}/csi.sock`);
  await new Promise((resolve) => server.once("listening", resolve));
  const pid = await spawnDetached("sleep", ["30"], { logPath: `${dir}/log` });
  try {
    await waitForExec(pid, "sleep");
    const fds = (await Array.fromAsync(Deno.readDir(`/proc/${pid}/fd`))).map((e) => e.name);
    assert.deepEqual(fds.sort(), ["0", "1", "2"]);
  } finally {
    Deno.kill(pid, "SIGKILL");
    server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("spawnDetached: umask 077, and `env` is the child's whole environment", async () => {
  const dir = await Deno.makeTempDir({ dir: "/run" });
  Deno.env.set("ZEROFS_CSI_TEST_MARKER", "agent-only");
  const pid = await spawnDetached("sleep", ["30"], {
    logPath: `${dir}/log`,
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", ONLY_THIS: "1" },
  });
  try {
    await waitForExec(pid, "sleep");
    const status = await Deno.readTextFile(`/proc/${pid}/status`);
    assert.match(status, /^Umask:\s+0077$/m);
    const environ = (await Deno.readTextFile(`/proc/${pid}/environ`)).split("\0").filter(Boolean);
    const names = environ.map((kv) => kv.slice(0, kv.indexOf("="))).sort();
    assert.ok(!names.includes("ZEROFS_CSI_TEST_MARKER"), names.join());
    assert.ok(names.includes("ONLY_THIS") && names.includes("PATH"), names.join());
    assert.equal((await Deno.stat(`${dir}/log`)).mode! & 0o777, 0o600);
  } finally {
    Deno.env.delete("ZEROFS_CSI_TEST_MARKER");
    Deno.kill(pid, "SIGKILL");
    await Deno.remove(dir, { recursive: true });
  }
});
