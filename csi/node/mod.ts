/**
 * The CSI Node service: stage (ZeroFS → 9P device file → NBD attach →
 * format once → mount), publish, unpublish, unstage, stats, expand, info.
 *
 * @module
 */

import { type Attacher, NodeLock, selectAttacher, spawnThroughKeeper } from "../../blockdev/mod.ts";
import {
  nodeLockPath,
  PodRunner,
  ProcessRunner,
  volumeDirsRoot,
  type ZeroFsRunner,
} from "../../zerofs/mod.ts";
import { createKubeClient } from "../../kube/mod.ts";
import type { Logger } from "../log.ts";
import type { NodeHandlers, NodeStageVolumeRequest__Output } from "../messages/mod.ts";
import { DEFAULT_FS_TYPES } from "../validate.ts";
import type { NodeContext, SettingsProvider } from "./context.ts";
import { nodeExpandVolume } from "./expand.ts";
import { nodeGetCapabilities, nodeGetInfo } from "./info.ts";
import { nodePublishVolume, nodeUnpublishVolume } from "./publish.ts";
import { KubeSettingsProvider } from "./kube_settings.ts";
import { FileSettingsProvider } from "./settings_provider.ts";
import { nodeStageVolume } from "./stage.ts";
export { nodeStageVolume };
import {
  KubeVolumeEvents,
  NO_EVENTS,
  stageFailureReason,
  type VolumeEvents,
  warningMessage,
} from "./events.ts";
import { NodeStateStore } from "./state.ts";
import { nodeGetVolumeStats } from "./stats.ts";
import { nodeUnstageVolume } from "./unstage.ts";

export type { NodeContext, SettingsProvider } from "./context.ts";
export {
  NodeStateStore,
  type NodeVolumePhase,
  type NodeVolumeState,
  type PublishedTarget,
} from "./state.ts";
export { unstageVolume } from "./unstage.ts";
export { volumeCondition, type VolumeHealth, volumeHealth } from "./stats.ts";
export { recoverNodeState } from "./recovery.ts";
export { buildInstanceSpec } from "./zerofs_instance.ts";
export {
  countOrphans,
  type Orphan,
  ORPHAN_KINDS,
  type OrphanKind,
  scanOrphans,
} from "./orphans.ts";
export { DEFAULT_KUBELET_DIR, kubeletDirProblem } from "./host_paths.ts";
export { FileSettingsProvider, parseSettingsFile, type SettingsFile } from "./settings_provider.ts";

/** Flags of `zerofs-csi node`. */
export interface NodeOptions {
  endpoint: string;
  nodeId: string;
  stateDir: string;
  attachMode: "kernel" | "userspace" | "auto";
  /** Userspace attach: start nbdfuse through this process keeper (outlives the agent's container). */
  processKeeperSocket?: string;
  runner: "process" | "pod";
  zerofsBin: string;
  settingsFile?: string;
  kubeconfig?: string;
  namespace: string;
  maxVolumes?: number;
  /** The kubelet's root directory; staging and target paths must lie below it. */
  kubeletDir: string;
}

/** Node handlers keyed by RPC name. */
export type NodeServiceHandlers = NodeHandlers;

/** How long ZeroFS may take to answer its first handshakes. */
const READY_TIMEOUT_MS = 60_000;

/** Build the node's shared context from its flags. */
export async function createNodeContext(opts: NodeOptions, log: Logger): Promise<NodeContext> {
  await makePrivateStateRoot(opts.stateDir);
  const lock = new NodeLock(nodeLockPath(opts.stateDir));
  let runner: ZeroFsRunner;
  let settings: SettingsProvider;
  let events: VolumeEvents = NO_EVENTS;
  if (opts.runner === "pod") {
    // In a cluster: ZeroFS in one pod per volume, settings from the ConfigMap the
    // volume names; the agent never reads a Secret.
    const kube = await createKubeClient({ kubeconfig: opts.kubeconfig });
    runner = new PodRunner({ kube, namespace: opts.namespace, nodeName: opts.nodeId, log });
    settings = new KubeSettingsProvider(kube, opts.namespace);
    events = new KubeVolumeEvents(kube, { nodeId: opts.nodeId, log });
  } else {
    runner = new ProcessRunner({
      zerofsBin: opts.zerofsBin,
      readyTimeoutMs: READY_TIMEOUT_MS,
      log,
    });
    settings = opts.settingsFile
      ? await FileSettingsProvider.load(opts.settingsFile)
      : new FileSettingsProvider({ defaults: {}, configMaps: {} });
  }
  return {
    nodeId: opts.nodeId,
    stateRoot: opts.stateDir,
    kubeletDir: opts.kubeletDir,
    allowedFsTypes: DEFAULT_FS_TYPES,
    maxVolumes: opts.maxVolumes,
    runner,
    attacher: await attacherFor(opts, lock, log),
    states: new NodeStateStore(opts.stateDir),
    settings,
    events,
    log,
  };
}

/**
 * The node's attacher. In a container (pod runner), an nbdfuse the agent
 * starts itself dies with the agent's container and takes the device of every
 * volume in use with it: say so, once, at start.
 */
async function attacherFor(opts: NodeOptions, lock: NodeLock, log: Logger): Promise<Attacher> {
  const spawn = opts.processKeeperSocket ? spawnThroughKeeper(opts.processKeeperSocket) : undefined;
  const attacher = await selectAttacher({ mode: opts.attachMode, lock, userspace: { spawn } });
  if (attacher.mode === "userspace" && opts.runner === "pod" && !spawn) {
    log.log("warn", USERSPACE_WITHOUT_KEEPER_WARNING, {});
  }
  return attacher;
}

/** Logged by a pod-runner agent that attaches in userspace with no process keeper. */
const USERSPACE_WITHOUT_KEEPER_WARNING =
  "userspace attach without --process-keeper-socket: nbdfuse dies with this container, and " +
  "every volume in use loses its device when the agent restarts; deploy the " +
  "manifests/components/userspace-attach component";

/**
 * The state root and its `v/` directory are the agent's alone (0700), also
 * when they already exist with wider modes: kubelet's `DirectoryOrCreate`
 * hostPath makes 0755, and every volume's unauthenticated ZeroFS sockets
 * live below.
 */
async function makePrivateStateRoot(stateDir: string): Promise<void> {
  await Deno.mkdir(stateDir, { recursive: true, mode: 0o700 });
  await Deno.chmod(stateDir, 0o700);
  await Deno.chmod(volumeDirsRoot(stateDir), 0o700).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
}

/** Tell the PVC's owner, through an Event, about a stage failure they must act on. */
async function warnOnFailure<T>(
  ctx: NodeContext,
  req: NodeStageVolumeRequest__Output,
  work: Promise<T>,
): Promise<T> {
  try {
    return await work;
  } catch (e) {
    const reason = stageFailureReason(e);
    if (reason) {
      await ctx.events.warn({
        volumeId: String(req.volume_id ?? ""),
        volumeContext: req.volume_context ?? {},
        reason,
        message: warningMessage(e, req),
      });
    }
    throw e;
  }
}

/** Handlers keyed by RPC name; the request pipeline wraps each. */
export function nodeHandlers(ctx: NodeContext): NodeServiceHandlers {
  return {
    NodeStageVolume: (req) => warnOnFailure(ctx, req, nodeStageVolume(ctx, req)),
    NodeUnstageVolume: (req) => nodeUnstageVolume(ctx, req),
    NodePublishVolume: (req) => nodePublishVolume(ctx, req),
    NodeUnpublishVolume: (req) => nodeUnpublishVolume(ctx, req),
    NodeGetVolumeStats: (req) => nodeGetVolumeStats(ctx, req),
    NodeExpandVolume: (req) => nodeExpandVolume(ctx, req),
    NodeGetCapabilities: () => Promise.resolve(nodeGetCapabilities()),
    NodeGetInfo: () => nodeGetInfo(ctx),
  };
}
