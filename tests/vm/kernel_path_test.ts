/**
 * The production attach path on a real kernel: one VM boot (`nbds_max=4`)
 * runs tests/vm_guest/kernel_path.ts, which starts a controller and a node
 * agent with `--attach-mode kernel` and the ZeroFS stand-in inside the guest
 * and drives them through the CSI API. Each scenario reports one result line;
 * each becomes one test step here, so a failure names its scenario.
 *
 * What the kernel path does differently from the userspace path (the host's
 * node tests), and the step that proves each:
 * - the device is `/dev/nbdK` connected by `nbd-client` over netlink, with no
 *   helper process (userspace: nbdfuse + a loop device) — every lifecycle step
 *   checks the recorded device, its sysfs size and, for block, the nbd major;
 * - "free" is read from sysfs (`size` 0, no `pid`) after `nbd-client -d` —
 *   checked after every unstage;
 * - the kernel owns the connection, so an agent restart cannot break I/O —
 *   drill-agent-restart (a writer with fsync runs through a SIGKILL restart);
 * - a dead server leaves the device configured but failing I/O, and nothing
 *   may reconnect it — drill-zerofs-kill;
 * - the device count is the module's `nbds_max` — drill-device-exhaustion;
 * - connect/disconnect must leave nothing over many cycles — drill-cycles.
 *
 * Run as root: `deno test -A tests/vm/kernel_path_test.ts` (~15 min under TCG).
 *
 * @module
 */

import assert from "node:assert/strict";
import { parseResults, type ScenarioResult } from "../vm_guest/protocol.ts";
import { REPO_DIR, runInVm } from "./mod.ts";

const NBD_DEVICES = 4;
const STAGE_CYCLES = 50;

/** The scenarios, in the order the guest runs them (argument after `=`). */
const PLAN = [
  "lifecycle-ext4",
  "lifecycle-xfs",
  "lifecycle-btrfs",
  "lifecycle-block",
  "drill-agent-restart",
  "drill-zerofs-kill",
  `drill-device-exhaustion=${NBD_DEVICES}`,
  `drill-cycles=${STAGE_CYCLES}`,
];

/** Everything, boot included; the tier must stay well under 25 minutes. */
const VM_TIMEOUT_MS = 22 * 60_000;
const OUTPUT_TAIL_CHARS = 4000;

/** Host-side checks of what a scenario reported, beyond its own assertions. */
const FACT_CHECKS: Record<string, (facts: Record<string, unknown>) => void> = {
  "drill-agent-restart": (f) => {
    assert.ok(Number(f.linesAtRestart) > Number(f.linesAtKill), JSON.stringify(f));
    assert.ok(Number(f.linesWritten) > Number(f.linesAtRestart), JSON.stringify(f));
  },
  "drill-zerofs-kill": (f) => {
    assert.ok(Number(f.conditionMs) <= 5_000, `abnormal after ${f.conditionMs} ms`);
    assert.match(String(f.conditionMessage), /ZeroFS is not ready/);
  },
  "drill-device-exhaustion": (f) => {
    assert.match(String(f.refusal), new RegExp(`all ${NBD_DEVICES} nbd devices are in use`));
  },
  "drill-cycles": (f) => assert.equal(f.cycles, STAGE_CYCLES),
};

function tail(text: string): string {
  return text.length > OUTPUT_TAIL_CHARS ? "…" + text.slice(-OUTPUT_TAIL_CHARS) : text;
}

function describeFailure(result: ScenarioResult): string {
  const { nodeLogTail, ...facts } = result.facts;
  return `${result.scenario} failed in the guest after ${result.ms} ms:\n${result.error}\n` +
    `facts: ${JSON.stringify(facts)}\n--- node agent log (tail) ---\n${nodeLogTail ?? ""}`;
}

Deno.test("VM: the kernel attach path through the CSI API (lifecycles and drills)", async (t) => {
  const started = performance.now();
  const vm = await runInVm({
    script: `exec deno run -A --config ${REPO_DIR}/deno.json ` +
      `${REPO_DIR}/tests/vm_guest/kernel_path.ts ${PLAN.join(" ")}\n`,
    timeoutMs: VM_TIMEOUT_MS,
    nbdsMax: NBD_DEVICES,
    cpus: 2,
    memoryMiB: 3072,
  });
  const results = new Map(parseResults(vm.output).map((r) => [r.scenario, r]));
  const report = (name: string): ScenarioResult => {
    const result = results.get(name);
    assert.ok(result, `${name} reported nothing; guest output (tail):\n${tail(vm.output)}`);
    assert.ok(result.ok, describeFailure(result));
    return result;
  };

  await t.step("environment: nbd module loaded, controller and node started", () => {
    const env = report("environment");
    assert.equal(env.facts.nbdDevices, NBD_DEVICES);
  });
  for (const entry of PLAN) {
    const name = entry.split("=")[0];
    await t.step(name, () => {
      const result = report(name);
      FACT_CHECKS[name]?.(result.facts);
    });
  }
  await t.step("guest program exited 0", () => {
    assert.equal(vm.exitCode, 0, `guest output (tail):\n${tail(vm.output)}`);
  });

  const timings = {
    bootMs: Math.round(vm.bootMs),
    vmTotalMs: Math.round(vm.totalMs),
    testMs: Math.round(performance.now() - started),
    scenariosMs: Object.fromEntries([...results.values()].map((r) => [r.scenario, r.ms])),
  };
  console.log("kernel path VM timings:", JSON.stringify(timings));
});
