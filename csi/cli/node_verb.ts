/**
 * `zerofs-csi node`: the Identity and Node services, plus the node context
 * that `status`, `attach` and `detach` share with it.
 *
 * @module
 */

import { armFailpointsFromEnv } from "../failpoints.ts";
import { createIdentityService } from "../identity.ts";
import { registerNode } from "../known_nodes.ts";
import { VolumeFileLocks, VolumeLocks } from "../locks.ts";
import type { Logger } from "../log.ts";
import type { DriverMetrics } from "../metrics.ts";
import {
  countOrphans,
  createNodeContext,
  DEFAULT_KUBELET_DIR,
  kubeletDirProblem,
  type NodeContext,
  nodeHandlers,
  type NodeOptions,
  recoverNodeState,
  scanOrphans,
  volumeHealth,
} from "../node/mod.ts";
import type { PipelineContext } from "../pipeline.ts";
import { startCsiServer } from "../server.ts";
import {
  DEFAULT_STATE_DIR,
  type Flags,
  type FlagSpec,
  LOG_FLAGS,
  loggerFrom,
  oneOf,
  optionalFlag,
  parseFlags,
  requireFlag,
  UsageError,
} from "./flags.ts";
import { metricsFor, serveUntilSignal } from "./serve.ts";
import { printUsage } from "./usage.ts";

/** Flags every node-side verb accepts (they all build the same node context). */
export const NODE_FLAGS: FlagSpec = {
  "node-id": { type: "string" },
  "state-dir": { type: "string", default: DEFAULT_STATE_DIR },
  "kubelet-dir": { type: "string", default: DEFAULT_KUBELET_DIR },
  "attach-mode": { type: "string", default: "auto" },
  "process-keeper-socket": { type: "string" },
  runner: { type: "string", default: "process" },
  "zerofs-bin": { type: "string", default: "zerofs" },
  "settings-file": { type: "string" },
  kubeconfig: { type: "string" },
  namespace: { type: "string", default: "zerofs" },
};

/** Node options from parsed flags; `endpoint` only for the serving verb. */
export function nodeOptions(verb: string, flags: Flags): NodeOptions {
  const maxVolumes = optionalFlag(flags, "max-volumes");
  const max = maxVolumes === undefined ? undefined : Number(maxVolumes);
  if (max !== undefined && (!Number.isSafeInteger(max) || max < 1)) {
    throw new UsageError(`--max-volumes must be a positive integer, not "${maxVolumes}"`, verb);
  }
  const kubeletDir = String(flags["kubelet-dir"]);
  const problem = kubeletDirProblem(kubeletDir);
  if (problem) throw new UsageError(problem, verb);
  return {
    endpoint: verb === "node" ? requireFlag(verb, flags, "endpoint") : "",
    nodeId: optionalFlag(flags, "node-id") ?? Deno.hostname(),
    stateDir: String(flags["state-dir"]),
    kubeletDir,
    attachMode: oneOf(verb, "attach-mode", String(flags["attach-mode"]), [
      "kernel",
      "userspace",
      "auto",
    ]),
    processKeeperSocket: optionalFlag(flags, "process-keeper-socket"),
    runner: oneOf(verb, "runner", String(flags.runner), ["process", "pod"]),
    zerofsBin: String(flags["zerofs-bin"]),
    settingsFile: optionalFlag(flags, "settings-file"),
    kubeconfig: optionalFlag(flags, "kubeconfig"),
    namespace: String(flags.namespace),
    maxVolumes: max,
  };
}

/** Run the node agent until a termination signal; resolves with the exit code. */
export async function runNode(argv: string[]): Promise<number> {
  const flags = parseFlags("node", argv, {
    endpoint: { type: "string" },
    ...NODE_FLAGS,
    "max-volumes": { type: "string" },
    "metrics-address": { type: "string" },
    "node-registry": { type: "string" },
    ...LOG_FLAGS,
  });
  if (flags.help) return printUsage("node");
  const opts = nodeOptions("node", flags);
  const log = loggerFrom("node", flags);
  armFailpointsFromEnv(log);
  const ctx = await createNodeContext(opts, log);
  await recoverNodeState(ctx);
  // A controller reading the registry publishes only to nodes that wrote their record.
  const registryDir = optionalFlag(flags, "node-registry");
  if (registryDir) {
    const record = await registerNode(registryDir, opts.nodeId);
    log.log("info", "node registered", { node_id: opts.nodeId, record });
  }
  const pipeline: PipelineContext = {
    log,
    locks: new VolumeLocks(),
    fileLocks: new VolumeFileLocks(ctx.stateRoot),
  };
  const metrics = await metricsFor(optionalFlag(flags, "metrics-address"), pipeline, log);
  metrics?.metrics.onCollect(() => collectNodeGauges(ctx, metrics.metrics));
  const server = await startCsiServer(opts.endpoint, {
    pipeline,
    handlers: {
      Identity: createIdentityService({ controllerService: true }),
      Node: nodeHandlers(ctx),
    },
  });
  return serveUntilSignal(server, log, { mode: "node", onStop: metrics?.close });
}

/** Read the node's state at scrape time: volumes, devices, ZeroFS readiness, conditions. */
export async function collectNodeGauges(ctx: NodeContext, metrics: DriverMetrics): Promise<void> {
  const states = await ctx.states.list();
  let ready = 0;
  let abnormal = 0;
  for (const state of states) {
    const health = await volumeHealth(ctx, state);
    if (health.condition.abnormal) abnormal++;
    if (health.zerofs.ready) ready++;
  }
  const inUse = states.filter((s) => s.attachment).length;
  const capacity = await ctx.attacher.capacity();
  metrics.setNodeGauges({
    volumesStaged: states.filter((s) => s.phase === "staged").length,
    nbdDevicesInUse: inUse,
    nbdDevicesAvailable: Math.max(0, capacity - inUse),
    zerofsInstancesReady: ready,
    zerofsInstancesNotReady: states.length - ready,
    volumesAbnormal: abnormal,
  });
  metrics.setOrphans(countOrphans(await scanOrphans(ctx.stateRoot, states)));
}

/** Build the node context for a one-shot verb (status, attach, detach). */
export async function nodeContextFor(
  verb: string,
  flags: Flags,
): Promise<{ ctx: NodeContext; log: Logger }> {
  const log = loggerFrom(verb, flags);
  return { ctx: await createNodeContext(nodeOptions(verb, flags), log), log };
}
