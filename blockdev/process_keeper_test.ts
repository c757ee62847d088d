import assert from "node:assert/strict";
import { join } from "node:path";
import { pollUntil } from "./poll.ts";
import { isProcessAlive, processArgv, signalProcess } from "./process.ts";
import {
  type ProcessKeeperEvent,
  serveProcessKeeper,
  spawnThroughKeeper,
} from "./process_keeper.ts";
import { ToolError } from "./run.ts";

async function withKeeper(
  body: (
    spawn: ReturnType<typeof spawnThroughKeeper>,
    dir: string,
    events: ProcessKeeperEvent[],
  ) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "keeper-" });
  const events: ProcessKeeperEvent[] = [];
  const socketPath = join(dir, "keeper.sock");
  const keeper = await serveProcessKeeper({
    socketPath,
    tools: ["sleep"],
    logRoot: join(dir, "state"),
    onEvent: (e) => events.push(e),
  });
  try {
    await Deno.mkdir(join(dir, "state"));
    await body(spawnThroughKeeper(socketPath), dir, events);
  } finally {
    await keeper.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("process keeper: starts an allowed tool detached and answers its pid", async () => {
  await withKeeper(async (spawn, dir, events) => {
    assert.equal((await Deno.stat(join(dir, "keeper.sock"))).mode! & 0o777, 0o600);
    const logPath = join(dir, "state", "sleep.log");
    const pid = await spawn("sleep", ["30"], { logPath });
    try {
      assert.ok(await isProcessAlive(pid));
      // The launcher closes inherited descriptors, then execs the tool.
      const argv = await pollUntil(async () => {
        const now = await processArgv(pid);
        return now?.[0] === "sleep" ? now : undefined;
      }, { timeoutMs: 10_000 });
      assert.deepEqual(argv, ["sleep", "30"]);
      assert.deepEqual(events, [{ kind: "started", tool: "sleep", pid }]);
      assert.ok((await Deno.stat(logPath)).isFile);
    } finally {
      signalProcess(pid, "SIGKILL");
    }
  });
});

Deno.test("process keeper: refuses another tool, a log outside its root, and an environment", async () => {
  await withKeeper(async (spawn, dir, events) => {
    const refusals: Array<[string, string[], string, RegExp]> = [
      ["sh", ["-c", "id"], join(dir, "state", "x.log"), /tool "sh" is not one of sleep/],
      ["sleep", ["1"], join(dir, "x.log"), /must be a normalized path below/],
      ["sleep", ["1"], join(dir, "state", "..", "x.log"), /must be a normalized path below/],
    ];
    for (const [tool, args, logPath, reason] of refusals) {
      await assert.rejects(spawn(tool, args, { logPath }), (e: unknown) => {
        if (!(e instanceof ToolError)) return false;
        assert.equal(e.tool, tool);
        assert.match(e.message, reason);
        assert.match(e.message, /process keeper/);
        return true;
      });
    }
    await assert.rejects(
      spawn("sleep", ["1"], { logPath: join(dir, "state", "e.log"), env: { A: "b" } }),
      /cannot be given an environment/,
    );
    assert.equal(events.filter((e) => e.kind === "refused").length, 3);
    assert.equal(events.filter((e) => e.kind === "started").length, 0);
  });
});

Deno.test("process keeper: no keeper listening is an error naming the socket", async () => {
  const socketPath = "/run/zerofs-csi-no-such-keeper.sock";
  await assert.rejects(
    spawnThroughKeeper(socketPath)("sleep", ["1"], { logPath: "/tmp/x.log" }),
    (e: unknown) =>
      e instanceof ToolError && e.message.includes(socketPath) &&
      /cannot connect/.test(e.message),
  );
});
