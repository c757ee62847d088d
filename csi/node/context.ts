/**
 * What the Node service handlers share: the node's identity, its state
 * store, and the ports to ZeroFS and the block layer (injected, so tests and
 * the standalone CLI can choose the runner and attacher).
 *
 * @module
 */

import type { Attacher } from "../../blockdev/mod.ts";
import type { SecretValues, VolumeSettings, ZeroFsRunner } from "../../zerofs/mod.ts";
import type { Logger } from "../log.ts";
import type { VolumeEvents } from "./events.ts";
import type { NodeStateStore } from "./state.ts";

/** Where a volume's settings and secret values come from at stage time. */
export interface SettingsProvider {
  /**
   * Resolve StorageClass parameters (the volume context) over the ConfigMap
   * they name over driver defaults; secret values from the CSI node-stage
   * secrets or the agent's own sources.
   */
  resolve(
    volumeContext: Record<string, string>,
    csiSecrets: Record<string, string>,
  ): Promise<{ settings: VolumeSettings; secrets: SecretValues }>;
}

/** The node agent's shared dependencies. */
export interface NodeContext {
  nodeId: string;
  stateRoot: string;
  /**
   * The kubelet's root directory (`--kubelet-dir`): staging and target paths
   * must lie below it, and no symlink there is followed.
   */
  kubeletDir: string;
  allowedFsTypes: readonly string[];
  /** Optional cap below the device count (`--max-volumes`). */
  maxVolumes?: number;
  runner: ZeroFsRunner;
  attacher: Attacher;
  states: NodeStateStore;
  settings: SettingsProvider;
  log: Logger;
  /** Kubernetes Events for what a user must act on (none standalone). */
  events: VolumeEvents;
}
