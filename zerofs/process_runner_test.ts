import assert from "node:assert/strict";
import { join } from "node:path";
import { readLogTail, zerofsEnvironment } from "./process_runner.ts";

// The runner itself is tested with real processes in tests/integration/process_runner_test.ts.

Deno.test("readLogTail returns the last lines, and empty for a missing log", async () => {
  const dir = `/run/zerofs-csi/test-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(dir, { recursive: true });
  try {
    const log = join(dir, "zerofs.log");
    assert.equal(await readLogTail(log), "");
    const lines = Array.from({ length: 5000 }, (_, i) => `line ${i}`);
    await Deno.writeTextFile(log, lines.join("\n") + "\n");
    assert.equal(await readLogTail(log, 3), "line 4997\nline 4998\nline 4999");
    assert.equal((await readLogTail(log)).split("\n").length, 20);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("zerofsEnvironment: a few passed variables and the secrets, nothing else of the agent's", () => {
  const env = zerofsEnvironment({ ZEROFS_ENCRYPTION_PASSWORD: "from-csi-secrets" }, {
    PATH: "/usr/bin",
    HOME: "/root",
    RUST_LOG: "info",
    KUBECONFIG: "/etc/kube",
    SOME_TOKEN: "agent-only",
    ZEROFS_ENCRYPTION_PASSWORD: "from-agent",
  });
  assert.deepEqual(env, {
    PATH: "/usr/bin",
    HOME: "/root",
    RUST_LOG: "info",
    ZEROFS_ENCRYPTION_PASSWORD: "from-csi-secrets",
  });
});
