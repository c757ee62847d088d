/**
 * The node data path with the kernel attacher (`nbd-client` → /dev/nbdK),
 * measured inside a VM (tests/vm): stage per step (from the node's
 * "volume staged" log line), publish, unpublish and unstage over ext4
 * volumes, one after another. No targets: the guest runs under qemu TCG,
 * roughly 20× slower than the host, so only the proportions mean much.
 *
 * @module
 */

import { parseResults } from "../vm_guest/protocol.ts";
import type { BenchSamples } from "../vm_guest/bench.ts";
import { REPO_DIR, runInVm } from "../vm/mod.ts";
import type { BenchReport, BenchRow } from "./report.ts";

const VOLUMES = 10;
/** Boot, environment start-up (~2–3 min under TCG) and the volumes. */
const VM_TIMEOUT_MS = 15 * 60_000;

/** Run the section: one VM boot, `VOLUMES` volumes. */
export async function run(): Promise<BenchReport> {
  const vm = await runInVm({
    script: `exec deno run -A --config ${REPO_DIR}/deno.json ` +
      `${REPO_DIR}/tests/vm_guest/kernel_path.ts bench=${VOLUMES}\n`,
    timeoutMs: VM_TIMEOUT_MS,
    nbdsMax: 4,
    cpus: 2,
    memoryMiB: 3072,
  });
  const results = parseResults(vm.output);
  const bench = results.find((r) => r.scenario === "bench");
  if (vm.exitCode !== 0 || !bench?.ok) {
    const failed = results.find((r) => !r.ok);
    throw new Error(
      `the VM benchmark failed (exit ${vm.exitCode}): ` +
        (failed ? `${failed.scenario}: ${failed.error}` : vm.output.slice(-3000)),
    );
  }
  const samples = bench.facts.samples as BenchSamples;
  const rows: BenchRow[] = Object.entries(samples).map(([name, samplesMs]) => ({
    name,
    samplesMs,
  }));
  const environment = results.find((r) => r.scenario === "environment");
  return {
    section: `Node data path in a VM (${VOLUMES} volumes, ext4 1 GiB, kernel attach, ` +
      `ZeroFS stand-in, qemu TCG)`,
    rows,
    notes: [
      `guest kernel ${environment?.facts.kernel}; VM boot ${Math.round(vm.bootMs)} ms, ` +
      `controller + node start-up ${environment?.ms} ms, whole run ${Math.round(vm.totalMs)} ms`,
      "no targets: TCG emulation is ~20x slower than the host; compare steps, not absolutes",
      "zerofs_start is dominated by the stand-in's own Deno start-up under TCG",
      "unstage has no per-step log line: its row is the client's view (unmount, " +
      "nbd-client -d until sysfs shows the device free, ZeroFS SIGTERM and exit)",
    ],
  };
}

if (import.meta.main) {
  const { formatReport } = await import("./report.ts");
  console.log(formatReport(await run()));
}
