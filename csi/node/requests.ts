/**
 * Node RPC inputs, parsed once at the edge into plain typed values.
 *
 * @module
 */

import type { FsType } from "../../blockdev/mod.ts";
import { pinFromContext, type VolumePin } from "../../zerofs/mod.ts";
import { DEFAULT_CAPACITY_BYTES, roundUpToBlock } from "../capacity.ts";
import { invalidArgument } from "../errors.ts";
import type {
  NodePublishVolumeRequest__Output,
  NodeStageVolumeRequest,
  NodeUnpublishVolumeRequest__Output,
} from "../messages/mod.ts";
import { parseKubeletPath } from "./host_paths.ts";
import { parseCapability, type ParsedCapability, parseVolumeId } from "../validate.ts";

const READ_ONLY_MODES = new Set(["SINGLE_NODE_READER_ONLY", "MULTI_NODE_READER_ONLY"]);

/** A validated NodeStageVolume request. */
export interface StageInput {
  volumeId: string;
  stagingPath: string;
  capability: ParsedCapability;
  /** The filesystem to use (mount access). */
  fsType?: FsType;
  /** Staged as a ZeroFS reader with a read-only device. */
  readOnly: boolean;
  capacityBytes: number;
  volumeContext: Record<string, string>;
  /**
   * Where the volume lives, as the controller pinned it (`zerofs.csi/*`
   * keys): from the volume context, else from the publish context (volumes
   * pinned after creation); null when neither carries a pin.
   */
  pin: VolumePin | null;
  secrets: Record<string, string>;
}

/**
 * Validate NodeStageVolume's fields; every failure names the field. The
 * staging path must lie below the kubelet directory, with no symlink among
 * its existing components there. The request is as decoded, or as the
 * `attach` verb writes it (fields it has no use for left out).
 */
export async function parseStageRequest(
  req: NodeStageVolumeRequest,
  opts: { allowedFsTypes: readonly string[]; kubeletDir: string },
): Promise<StageInput> {
  const { allowedFsTypes, kubeletDir } = opts;
  const volumeId = parseVolumeId(req.volume_id, "volume_id");
  const stagingPath = await parseKubeletPath(
    req.staging_target_path,
    "staging_target_path",
    kubeletDir,
  );
  if (!req.volume_capability) throw invalidArgument("volume_capability is required");
  const capability = parseCapability(req.volume_capability, { allowedFsTypes });
  const volumeContext: Record<string, string> = req.volume_context ?? {};
  const publishContext: Record<string, string> = req.publish_context ?? {};
  return {
    volumeId,
    stagingPath,
    capability,
    fsType: capability.accessType === "mount"
      ? fsTypeOf(capability, volumeContext, allowedFsTypes)
      : undefined,
    readOnly: READ_ONLY_MODES.has(capability.accessMode) || publishContext.readonly === "true",
    // The volume context keeps the size at creation; the controller's publish context
    // carries the size after an offline ControllerExpandVolume.
    capacityBytes: Math.max(
      capacityOf(volumeContext, "volume_context"),
      publishContext.capacityBytes === undefined
        ? 0
        : capacityOf(publishContext, "publish_context"),
    ),
    volumeContext,
    pin: stagePin(volumeContext, publishContext),
    secrets: req.secrets ?? {},
  };
}

/** The volume context's pin over the publish context's, key by key; each validated like a setting. */
function stagePin(
  volumeContext: Record<string, string>,
  publishContext: Record<string, string>,
): VolumePin | null {
  const fromVolume = pinFromContext(volumeContext, "volume_context");
  const fromPublish = pinFromContext(publishContext, "publish_context");
  return fromVolume || fromPublish ? { ...fromPublish, ...fromVolume } : null;
}

/**
 * Validate the fields shared by NodePublishVolume and NodeUnpublishVolume:
 * the target path must lie below the kubelet directory, with no symlink
 * among its existing components there.
 */
export async function parseTargetRequest(
  req: NodePublishVolumeRequest__Output | NodeUnpublishVolumeRequest__Output,
  kubeletDir: string,
): Promise<{ volumeId: string; targetPath: string }> {
  const volumeId = parseVolumeId(req.volume_id, "volume_id");
  return {
    volumeId,
    targetPath: await parseKubeletPath(req.target_path, "target_path", kubeletDir),
  };
}

function fsTypeOf(
  capability: ParsedCapability,
  volumeContext: Record<string, string>,
  allowed: readonly string[],
): FsType {
  const fsType = capability.fsType || volumeContext.fsType || volumeContext.filesystem || "ext4";
  if (!allowed.includes(fsType)) {
    throw invalidArgument(
      `fs type "${fsType}" is not supported; use one of ${allowed.join(", ")}`,
    );
  }
  return fsType as FsType;
}

function capacityOf(context: Record<string, string>, field: string): number {
  // The original driver's PVs carry `capacity_bytes` (its CreateVolume wrote the
  // required bytes there, "0" when the request named none).
  const legacy = context.capacity_bytes;
  const text = context.capacityBytes ??
    (legacy !== undefined && legacy !== "0" ? legacy : undefined);
  // A volume not made by our controller carries no capacity.
  if (text === undefined) return DEFAULT_CAPACITY_BYTES;
  const bytes = Number(text);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) {
    throw invalidArgument(
      `${field}.capacityBytes "${text}" is not a positive whole number of bytes`,
    );
  }
  return roundUpToBlock(bytes);
}
