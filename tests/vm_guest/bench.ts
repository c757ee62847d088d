/**
 * Stage and unstage timings with the kernel attacher, per step, over a few
 * volumes — the guest half of tests/bench/vm_node_path.ts. The step times
 * come from the node's "volume staged" log line (`steps_ms`).
 *
 * @module
 */

import { volumeProcesses } from "../helpers/node_env.ts";
import { createVolume } from "../helpers/volume_steps.ts";
import { stageSteps } from "../bench/node_path.ts";
import { CALL_MS, GiB, type Scenario } from "./scenario.ts";

/** Samples per row name, in milliseconds. */
export type BenchSamples = Record<string, number[]>;

/** Stage, publish, unpublish and unstage `volumes` ext4 volumes one after another. */
export async function benchStageUnstage(s: Scenario, volumes: number): Promise<void> {
  const samples: BenchSamples = {};
  const add = (name: string, ms: number) => (samples[name] ??= []).push(Math.round(ms * 100) / 100);
  for (let i = 0; i < volumes; i++) {
    const name = `pvc-vm-bench-${i}`;
    const volume = await createVolume(s.env.controller.client, {
      name,
      kind: "ext4",
      sizeBytes: GiB,
    });
    const req = s.requests(volume, "ext4");
    let t0 = performance.now();
    const device = await s.stage(req);
    add("stage (client view)", performance.now() - t0);
    const steps = stageSteps(s.env.node.output(), name);
    for (const [step, ms] of Object.entries(steps)) add(`  stage: ${step}`, ms);
    add(
      "  stage: driver overhead (total - zerofs_start - mkfs)",
      steps.total - (steps.zerofs_start ?? 0) - (steps.mkfs ?? 0),
    );
    t0 = performance.now();
    await s.node.NodePublishVolume(req.publish, CALL_MS);
    add("publish", performance.now() - t0);
    t0 = performance.now();
    await s.node.NodeUnpublishVolume(req.unpublish, CALL_MS);
    add("unpublish", performance.now() - t0);
    const processes = await volumeProcesses(s.env, name);
    t0 = performance.now();
    await s.node.NodeUnstageVolume(req.unstage, CALL_MS);
    add("unstage (client view)", performance.now() - t0);
    await s.unstage(req, device, processes); // a second unstage: a no-op, then the checks
    await s.env.controller.client.controller.DeleteVolume({ volume_id: name }, CALL_MS);
  }
  s.facts.samples = samples;
}
