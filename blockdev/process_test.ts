import assert from "node:assert/strict";
import { isProcessAlive, readProcessStat } from "./process.ts";

Deno.test("readProcessStat reads this process: its parent, a running state, a start time", async () => {
  const stat = await readProcessStat(Deno.pid);
  assert.ok(stat);
  assert.equal(stat.ppid, Deno.ppid);
  assert.match(stat.state, /^[RS]$/);
  assert.ok(Number.isSafeInteger(stat.startTicks) && stat.startTicks > 0, String(stat.startTicks));
});

Deno.test("readProcessStat: a command name holding ') ' does not shift the fields", async () => {
  const procRoot = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${procRoot}/42`);
    const after = ["Z", "7", ...Array.from({ length: 17 }, (_, i) => String(i)), "123456", "0"];
    await Deno.writeTextFile(`${procRoot}/42/stat`, `42 (odd) S 1 name) ${after.join(" ")}\n`);
    assert.deepEqual(await readProcessStat(42, procRoot), {
      state: "Z",
      ppid: 7,
      startTicks: 123456,
    });
    assert.equal(await isProcessAlive(42, procRoot), false, "a zombie is not alive");
    assert.equal(await readProcessStat(43, procRoot), undefined, "no such process");
  } finally {
    await Deno.remove(procRoot, { recursive: true });
  }
});

Deno.test("isProcessAlive: a child runs until it exits and is reaped", async () => {
  const child = new Deno.Command("sleep", { args: ["30"] }).spawn();
  assert.equal(await isProcessAlive(child.pid), true);
  child.kill("SIGKILL");
  await child.status;
  assert.equal(await isProcessAlive(child.pid), false);
});
