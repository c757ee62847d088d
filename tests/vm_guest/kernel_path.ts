/**
 * The guest program of the real-kernel tier: runs INSIDE the VM (see
 * tests/vm/kernel_path_test.ts), loads the nbd module, starts a controller
 * and a node agent with `--attach-mode kernel` and the real ZeroFS (MinIO in the guest for S3)
 * (sockets and state on the guest's /run tmpfs), runs the named scenarios
 * against that one environment and prints one `ZVM-RESULT` line each
 * (tests/vm_guest/protocol.ts).
 *
 * Usage (as root, in the guest):
 *   deno run -A --config deno.json tests/vm_guest/kernel_path.ts lifecycle-ext4 drill-cycles=50 …
 * A scenario's argument follows `=`; see {@linkcode SCENARIOS}. Exit code 0
 * when every scenario passed, 1 otherwise. `ZVM_DEBUG=1` prints the node
 * agent's whole log at the end.
 *
 * @module
 */

import { type NodeEnvironment, startNodeEnvironment } from "../helpers/node_env.ts";
import { benchStageUnstage } from "./bench.ts";
import { agentRestartUnderWriter, deviceExhaustion, stageCycles, zerofsKilled } from "./drills.ts";
import { listNbd } from "./kernel_state.ts";
import { lifecycle } from "./lifecycle.ts";
import { formatResult, type ScenarioResult } from "./protocol.ts";
import { Scenario } from "./scenario.ts";

/** Every scenario by name; `arg` is the number after `=` (or the default). */
export const SCENARIOS: Record<string, (s: Scenario, arg: number | undefined) => Promise<void>> = {
  "lifecycle-ext4": (s) => lifecycle(s, "ext4"),
  "lifecycle-xfs": (s) => lifecycle(s, "xfs"),
  "lifecycle-btrfs": (s) => lifecycle(s, "btrfs"),
  "lifecycle-block": (s) => lifecycle(s, "block"),
  "drill-agent-restart": (s) => agentRestartUnderWriter(s),
  "drill-zerofs-kill": (s) => zerofsKilled(s),
  "drill-device-exhaustion": (s, devices) => deviceExhaustion(s, devices ?? 4),
  "drill-cycles": (s, cycles) => stageCycles(s, cycles ?? 50),
  "bench": (s, volumes) => benchStageUnstage(s, volumes ?? 10),
};

/** How much of the node agent's log a failed scenario carries. */
const NODE_LOG_TAIL_LINES = 40;

function emit(result: ScenarioResult): void {
  console.log(formatResult(result));
}

function describe(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")}: ${dec.decode(out.stderr)}`);
  return dec.decode(out.stdout).trim();
}

/** Load nbd (nbds_max comes from the kernel command line) and start the services. */
async function startEnvironment(): Promise<NodeEnvironment | undefined> {
  const started = performance.now();
  const facts: Record<string, unknown> = {};
  try {
    await run("modprobe", ["nbd"]);
    facts.kernel = await run("uname", ["-r"]);
    facts.nbdDevices = (await listNbd()).length;
    const env = await startNodeEnvironment({ attachMode: "kernel" });
    emit({ scenario: "environment", ok: true, ms: Math.round(performance.now() - started), facts });
    return env;
  } catch (error) {
    emit({
      scenario: "environment",
      ok: false,
      ms: Math.round(performance.now() - started),
      facts,
      error: describe(error),
    });
    return undefined;
  }
}

async function main(args: string[]): Promise<number> {
  const wanted = args.map((a) => {
    const [name, value] = a.split("=");
    if (!(name in SCENARIOS)) throw new Error(`unknown scenario "${name}"`);
    return { name, arg: value === undefined ? undefined : Number(value) };
  });
  const env = await startEnvironment();
  if (!env) return 1;
  let failed = 0;
  try {
    for (const { name, arg } of wanted) {
      const scenario = new Scenario(env);
      const started = performance.now();
      const ms = () => Math.round(performance.now() - started);
      try {
        await SCENARIOS[name](scenario, arg);
        emit({ scenario: name, ok: true, ms: ms(), facts: scenario.facts });
      } catch (error) {
        failed++;
        const nodeLog = env.node.output().split("\n").slice(-NODE_LOG_TAIL_LINES).join("\n");
        emit({
          scenario: name,
          ok: false,
          ms: ms(),
          facts: { ...scenario.facts, nodeLogTail: nodeLog },
          error: describe(error),
        });
        await scenario.cleanUp().catch((e) => console.error(`clean-up after ${name}: ${e}`));
      }
    }
  } finally {
    if (Deno.env.get("ZVM_DEBUG")) console.error(env.node.output());
    await env.stop();
  }
  return failed === 0 ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
