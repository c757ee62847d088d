/**
 * One volume's CSI calls as kubelet and the sidecars make them, for the node
 * integration tests, the demo and the benchmark.
 *
 * @module
 */

import { join } from "node:path";
import type { CsiClient } from "./csi_client.ts";

/** How a test volume is accessed. */
export type AccessKind = "ext4" | "xfs" | "btrfs" | "block";

/** The volume capability for an access kind. */
export function capabilityFor(kind: AccessKind, mode = "SINGLE_NODE_WRITER") {
  return kind === "block"
    ? { block: {}, access_mode: { mode } }
    : { mount: { fs_type: kind, mount_flags: [] }, access_mode: { mode } };
}

/** Paths kubelet would use for a volume. */
export function kubeletPaths(kubeletDir: string, volumeId: string) {
  return {
    staging: join(kubeletDir, "plugins/zerofs.csi.driver/staging", volumeId),
    target: join(kubeletDir, "pods/pod-1/volumes", volumeId),
  };
}

/** CreateVolume as the external-provisioner makes it; returns the Volume. */
export async function createVolume(
  client: CsiClient,
  opts: { name: string; kind: AccessKind; sizeBytes: number; parameters?: Record<string, string> },
) {
  const res = await client.controller.CreateVolume({
    name: opts.name,
    capacity_range: { required_bytes: opts.sizeBytes },
    volume_capabilities: [capabilityFor(opts.kind)],
    parameters: opts.parameters ?? {},
  });
  return res.volume as {
    volume_id: string;
    capacity_bytes: number;
    volume_context: Record<string, string>;
  };
}

/** NodeStageVolume for a created volume. */
export function stageRequest(
  volume: { volume_id: string; volume_context: Record<string, string> },
  opts: {
    kind: AccessKind;
    staging: string;
    mode?: string;
    publishContext?: Record<string, string>;
  },
) {
  return {
    volume_id: volume.volume_id,
    staging_target_path: opts.staging,
    volume_capability: capabilityFor(opts.kind, opts.mode),
    volume_context: volume.volume_context,
    publish_context: opts.publishContext ?? {},
  };
}

/** NodePublishVolume for a staged volume. */
export function publishRequest(
  volume: { volume_id: string; volume_context: Record<string, string> },
  opts: { kind: AccessKind; staging: string; target: string; readonly?: boolean; mode?: string },
) {
  return {
    volume_id: volume.volume_id,
    staging_target_path: opts.staging,
    target_path: opts.target,
    volume_capability: capabilityFor(opts.kind, opts.mode),
    readonly: opts.readonly ?? false,
    volume_context: volume.volume_context,
  };
}
