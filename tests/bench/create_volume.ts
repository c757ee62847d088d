/**
 * CreateVolume latency over the unix socket against the real controller
 * process (-P=controller), distinct names, sequential calls.
 *
 * @module
 */

import { makeTestDir, startDriver } from "../helpers/driver.ts";
import type { BenchReport } from "./report.ts";
import { sample } from "./report.ts";

const CALLS = 300;
const WARMUP = 20;

/** Run the CreateVolume section. */
export async function run(): Promise<BenchReport> {
  const dir = await makeTestDir();
  const driver = await startDriver({
    mode: "controller",
    args: ["--endpoint", `${dir}/csi.sock`, "--state-dir", `${dir}/state`, "--log-level", "warn"],
  });
  try {
    const c = driver.client.controller;
    const req = (name: string) => ({
      name,
      capacity_range: { required_bytes: 1024 ** 3 },
      volume_capabilities: [{
        mount: { fs_type: "ext4" },
        access_mode: { mode: "SINGLE_NODE_WRITER" },
      }],
      parameters: { storageURL: "s3://bucket/volumes", preflight: "false" },
    });
    await sample(WARMUP, (i) => c.CreateVolume(req(`pvc-warmup-${i}`)));
    const fresh = await sample(CALLS, (i) => c.CreateVolume(req(`pvc-bench-${i}`)));
    const repeat = await sample(CALLS, (i) => c.CreateVolume(req(`pvc-bench-${i}`)));
    const probe = await sample(CALLS, () => driver.client.identity.Probe());
    return {
      section: "CreateVolume (controller over unix socket)",
      rows: [
        { name: "CreateVolume new name", samplesMs: fresh, targetP50Ms: 2 },
        { name: "CreateVolume existing (idempotent)", samplesMs: repeat, targetP50Ms: 2 },
        { name: "Probe (round-trip floor)", samplesMs: probe },
      ],
      notes: ["new names write + fsync a record file and its directory"],
    };
  } finally {
    try {
      await driver.stop();
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
}
