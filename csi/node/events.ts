/**
 * Kubernetes Events for what a user must act on, on the PVC the volume
 * belongs to (its name and namespace reach the volume context through the
 * provisioner's `--extra-create-metadata`). Recording never fails an RPC.
 *
 * @module
 */

import { PVC_NAME_PARAMETER, PVC_NAMESPACE_PARAMETER } from "../../zerofs/mod.ts";
import type { KubeClient } from "../../kube/mod.ts";
import { Code, toCsiError } from "../errors.ts";
import { FormatRefusedError } from "./format_once.ts";
import type { Logger } from "../log.ts";
import { knownSecretValues, scrubValues, secretValuesOf } from "../redact.ts";

/** A warning about one volume, for its PVC. */
export interface VolumeWarning {
  volumeId: string;
  volumeContext: Record<string, string>;
  reason: string;
  message: string;
}

/** Where warnings go: Kubernetes Events in a cluster, nowhere standalone. */
export interface VolumeEvents {
  warn(warning: VolumeWarning): Promise<void>;
}

/** Standalone node (process runner): the RPC error and the log say it all. */
export const NO_EVENTS: VolumeEvents = { warn: () => Promise.resolve() };

/** The Event reason for a NodeStageVolume failure a user must act on; undefined for others. */
export function stageFailureReason(e: unknown): string | undefined {
  const err = toCsiError(e);
  if (err instanceof FormatRefusedError) return "FormatRefused";
  switch (err.code) {
    case Code.DEADLINE_EXCEEDED:
      return "ZeroFSNotReady";
    case Code.RESOURCE_EXHAUSTED:
      return "NoDeviceAvailable";
    case Code.INVALID_ARGUMENT:
      return "InvalidVolumeSettings";
    case Code.FAILED_PRECONDITION:
      return "StageRefused";
    default:
      return undefined;
  }
}

/**
 * The text of a failure's Event, which tenants read in their namespace: the
 * error's message (a ZeroFS log tail is never part of it — see
 * `ZeroFsNotReadyError`) with every secret value the driver knows scrubbed.
 */
export function warningMessage(e: unknown, req: object): string {
  const text = e instanceof Error ? e.message : String(e);
  return scrubValues(text, [...secretValuesOf(req), ...knownSecretValues()]);
}

/** core/v1 Events on the volume's PVC, reported by this node. */
export class KubeVolumeEvents implements VolumeEvents {
  constructor(
    readonly kube: KubeClient,
    readonly opts: { nodeId: string; log: Logger },
  ) {}

  async warn(w: VolumeWarning): Promise<void> {
    const name = w.volumeContext[PVC_NAME_PARAMETER];
    const namespace = w.volumeContext[PVC_NAMESPACE_PARAMETER];
    if (!name || !namespace) return;
    const now = new Date();
    try {
      await this.kube.core.createNamespacedEvent({
        namespace,
        body: {
          metadata: { generateName: `${name}.`, namespace },
          involvedObject: { kind: "PersistentVolumeClaim", apiVersion: "v1", name, namespace },
          type: "Warning",
          reason: w.reason,
          message: `${w.message} (volume ${w.volumeId}, node ${this.opts.nodeId})`.slice(0, 1024),
          source: { component: "zerofs-csi-node", host: this.opts.nodeId },
          reportingComponent: "zerofs.csi.driver",
          reportingInstance: this.opts.nodeId,
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      });
    } catch (e) {
      this.opts.log.log("warn", "could not record a Kubernetes event", {
        volume_id: w.volumeId,
        reason: w.reason,
        error: e instanceof Error ? e.message : String(e),
      });
    }
  }
}
