import assert from "node:assert/strict";
import {
  failpoint,
  FAILPOINT_EXIT_CODE,
  FAILPOINT_NAMES,
  FAILPOINTS_ENV,
  parseFailpoints,
} from "./failpoints.ts";

Deno.test("unset or empty arms nothing; known names, spaces and repeats are accepted", () => {
  assert.deepEqual(parseFailpoints(undefined), new Set());
  assert.deepEqual(parseFailpoints(""), new Set());
  assert.deepEqual(parseFailpoints(" , "), new Set());
  assert.deepEqual(
    parseFailpoints(" stage.after-attach,stage.after-attach "),
    new Set(["stage.after-attach"]),
  );
});

Deno.test("an unknown name is refused, naming the variable, the name and the valid names", () => {
  assert.throws(
    () => parseFailpoints("stage.after-attach,stage.after-atach"),
    (e: Error) => {
      assert.match(e.message, new RegExp(`^${FAILPOINTS_ENV} names unknown failpoint`));
      assert.match(e.message, /"stage\.after-atach"/);
      assert.match(e.message, new RegExp(`valid names: ${FAILPOINT_NAMES.join(", ")} `));
      return true;
    },
  );
});

Deno.test("every failpoint is named after a node handler's step, and each handler has some", () => {
  for (const name of FAILPOINT_NAMES) {
    assert.match(name, /^(stage|unstage|publish|unpublish|expand)\.after-[a-z-]+$/);
  }
  const handlers = new Set(FAILPOINT_NAMES.map((n) => n.split(".")[0]));
  assert.deepEqual([...handlers].sort(), ["expand", "publish", "stage", "unpublish", "unstage"]);
  assert.equal(new Set(FAILPOINT_NAMES).size, FAILPOINT_NAMES.length, "no name twice");
});

/** Run a script that arms failpoints from `value` and reaches `stage.after-attach`. */
async function reachAfterAttach(value: string | undefined): Promise<Deno.CommandOutput> {
  const mod = new URL("./failpoints.ts", import.meta.url).href;
  const logMod = new URL("./log.ts", import.meta.url).href;
  const script = `
    import { armFailpointsFromEnv, failpoint } from ${JSON.stringify(mod)};
    import { createLogger } from ${JSON.stringify(logMod)};
    armFailpointsFromEnv(createLogger("info"));
    failpoint("stage.after-attach");
    console.log("went past the failpoint");
  `;
  const env: Record<string, string> = { NO_COLOR: "1" };
  if (value !== undefined) env[FAILPOINTS_ENV] = value;
  return await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", script],
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
}

Deno.test("an armed failpoint logs one line and exits with its code; unarmed it is inert", async () => {
  const dec = new TextDecoder();
  const armed = await reachAfterAttach("stage.after-attach");
  assert.equal(armed.code, FAILPOINT_EXIT_CODE, dec.decode(armed.stderr));
  assert.equal(dec.decode(armed.stdout), "", "nothing ran after the failpoint");
  const lines = dec.decode(armed.stderr).trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(
    lines.map((l) => [l.msg, l.failpoint ?? l.failpoints]),
    [["failpoints armed", ["stage.after-attach"]], [
      "failpoint reached: exiting",
      "stage.after-attach",
    ]],
  );

  for (const value of [undefined, ""]) {
    const inert = await reachAfterAttach(value);
    assert.equal(inert.code, 0, dec.decode(inert.stderr));
    assert.equal(dec.decode(inert.stdout), "went past the failpoint\n");
    assert.equal(dec.decode(inert.stderr), "", "no log line when nothing is armed");
  }
  // In this process nothing is armed: the call returns.
  failpoint("stage.after-attach");
});
