/**
 * The node data path per step, over ≥ 20 volumes: stage (with the driver's
 * own time separated from ZeroFS start-up and mkfs, from the node's
 * "volume staged" log line), publish, unpublish, unstage; and the node
 * agent's RSS idle and with every volume staged.
 *
 * @module
 */

import { startNodeEnvironment, tearDownNodeEnvironment } from "../helpers/node_env.ts";
import {
  createVolume,
  kubeletPaths,
  publishRequest,
  stageRequest,
} from "../helpers/volume_steps.ts";
import type { BenchReport, BenchRow } from "./report.ts";

const VOLUMES = 20;
const GIB = 1 << 30;

/** Resident set size of a process, from /proc. */
export async function rssMiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kib = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]);
  return kib / 1024;
}

/** The `steps_ms` of the node's last "volume staged" (or `event`) line for a volume. */
export function stageSteps(
  nodeOutput: string,
  volumeId: string,
  event = "volume staged",
): Record<string, number> {
  for (const line of nodeOutput.split("\n").reverse()) {
    if (!line.includes(`"${event}"`) || !line.includes(`"${volumeId}"`)) continue;
    return JSON.parse(line).steps_ms;
  }
  throw new Error(`no "${event}" log line for ${volumeId}`);
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** Run the node data path section. */
export async function run(): Promise<BenchReport> {
  const env = await startNodeEnvironment();
  const samples: Record<string, number[]> = {};
  const add = (name: string, ms: number) => (samples[name] ??= []).push(ms);
  const pid = env.node.process.pid;
  try {
    const node = env.node.client.node;
    const idleRss = await rssMiB(pid);
    const volumes = [];
    for (let i = 0; i < VOLUMES; i++) {
      const volume = await createVolume(env.controller.client, {
        name: `pvc-bench-node-${i}`,
        kind: "ext4",
        sizeBytes: GIB,
      });
      const paths = kubeletPaths(env.kubeletDir, volume.volume_id);
      const stage = stageRequest(volume, { kind: "ext4", staging: paths.staging });
      add("stage (client view)", await timed(() => node.NodeStageVolume(stage)));
      const steps = stageSteps(env.node.output(), volume.volume_id);
      add("  zerofs start (ready)", steps.zerofs_start);
      add("  mkfs.ext4", steps.mkfs);
      add("  attach (nbdfuse + loop)", steps.attach);
      add("  9P device file + record", steps.ninep);
      add("  mount", steps.mount);
      add("  blkid + zero check", steps.probe);
      add("  volume record after mkfs (9P, fsync)", steps.record);
      add("  state.json writes (fsync)", steps.state);
      const named = steps.zerofs_start + steps.mkfs + steps.attach + steps.ninep + steps.mount +
        steps.probe + steps.record + steps.state;
      add("  rest (settings, config, mountinfo, undo bookkeeping)", steps.total - named);
      add(
        "  driver overhead (total - zerofs - mkfs)",
        steps.total - steps.zerofs_start - steps.mkfs,
      );
      const publish = publishRequest(volume, {
        kind: "ext4",
        staging: paths.staging,
        target: paths.target,
      });
      add("publish", await timed(() => node.NodePublishVolume(publish)));
      add(
        "stats (with the durable write probe)",
        await timed(() =>
          node.NodeGetVolumeStats({ volume_id: volume.volume_id, volume_path: paths.target })
        ),
      );
      volumes.push({ volume, paths });
    }
    const stagedRss = await rssMiB(pid);
    for (const { volume, paths } of volumes) {
      const id = volume.volume_id;
      add(
        "unpublish",
        await timed(() => node.NodeUnpublishVolume({ volume_id: id, target_path: paths.target })),
      );
      add(
        "unstage",
        await timed(() =>
          node.NodeUnstageVolume({ volume_id: id, staging_target_path: paths.staging })
        ),
      );
      const steps = stageSteps(env.node.output(), id, "volume unstaged");
      add("  unmount", steps.unmount);
      add("  detach (losetup -d, nbdfuse exit)", steps.detach);
      add("  ZeroFS stop (SIGTERM → final flush → exit)", steps.zerofs_stop);
    }
    const targets: Record<string, number> = {
      "  driver overhead (total - zerofs - mkfs)": 100,
      publish: 20,
    };
    const rows: BenchRow[] = Object.entries(samples).map(([name, samplesMs]) => ({
      name,
      samplesMs,
      targetP50Ms: targets[name],
    }));
    return {
      section:
        `Node data path (${VOLUMES} volumes, ext4 1 GiB, userspace attach, real ZeroFS + MinIO)`,
      rows,
      notes: [
        `node agent RSS: idle ${idleRss.toFixed(1)} MiB, with ${VOLUMES} volumes staged ` +
        `${stagedRss.toFixed(1)} MiB (target ≤ 100 MiB)`,
        "driver overhead includes attach (nbdfuse + losetup), blkid, the 9P calls and mount",
      ],
    };
  } finally {
    await tearDownNodeEnvironment(env);
  }
}
