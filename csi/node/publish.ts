/**
 * NodePublishVolume / NodeUnpublishVolume: bind the staged volume (the
 * staging directory, or the device node for block access) onto the pod's
 * target path, honouring `readonly`.
 *
 * @module
 */

import { basename, dirname } from "node:path";
import {
  bindMount,
  findMountByTarget,
  type MountEntry,
  TENANT_MOUNT_OPTIONS,
  unmount,
} from "../../blockdev/mod.ts";
import { alreadyExists, failedPrecondition, internal, invalidArgument } from "../errors.ts";
import { parseAbsolutePath, parseCapability } from "../validate.ts";
import type { NodeContext } from "./context.ts";
import { parseTargetRequest, type RawRequest } from "./requests.ts";
import type { NodeVolumeState } from "./state.ts";

/** NodePublishVolume. */
export async function nodePublishVolume(ctx: NodeContext, req: RawRequest): Promise<object> {
  const { volumeId, targetPath } = parseTargetRequest(req);
  const stagingPath = parseAbsolutePath(req.staging_target_path, "staging_target_path");
  if (!req.volume_capability) throw invalidArgument("volume_capability is required");
  const capability = parseCapability(req.volume_capability, {
    allowedFsTypes: ctx.allowedFsTypes,
  });
  const readOnly = req.readonly === true;
  const state = await ctx.states.read(volumeId);
  if (state?.phase !== "staged" || !state.attachment || state.stagingPath !== stagingPath) {
    throw failedPrecondition(
      `volume "${volumeId}" is not staged at ${stagingPath}; call NodeStageVolume first`,
    );
  }
  if (capability.accessType !== state.accessType) {
    throw alreadyExists(
      `volume "${volumeId}" is staged for ${state.accessType} access, not ${capability.accessType}`,
    );
  }
  const source = state.accessType === "block" ? state.attachment.device : stagingPath;
  const existing = await findMountByTarget(targetPath);
  if (existing) {
    await requireSamePublication(state, { existing, targetPath, readOnly });
    return {};
  }
  await createTarget(targetPath, state.accessType);
  await bindMount(source, targetPath, {
    readOnly: readOnly || state.readOnly,
    // A block target is a device node: nodev would make it unusable.
    mountOptions: state.accessType === "mount" ? TENANT_MOUNT_OPTIONS : [],
  });
  await ctx.states.write({
    ...state,
    publishedTargets: [
      ...state.publishedTargets.filter((t) => t.path !== targetPath),
      { path: targetPath, readOnly },
    ],
  });
  return {};
}

/** NodeUnpublishVolume: unmount and remove the target; an absent target is success. */
export async function nodeUnpublishVolume(ctx: NodeContext, req: RawRequest): Promise<object> {
  const { volumeId, targetPath } = parseTargetRequest(req);
  await unmount(targetPath);
  if (await findMountByTarget(targetPath)) {
    throw internal(`target ${targetPath} is still mounted after unmount; retry`);
  }
  await Deno.remove(targetPath).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
  const state = await ctx.states.read(volumeId);
  if (state?.publishedTargets.some((t) => t.path === targetPath)) {
    await ctx.states.write({
      ...state,
      publishedTargets: state.publishedTargets.filter((t) => t.path !== targetPath),
    });
  }
  return {};
}

async function requireSamePublication(
  state: NodeVolumeState,
  opts: { existing: MountEntry; targetPath: string; readOnly: boolean },
): Promise<void> {
  const { existing, targetPath, readOnly } = opts;
  const staging = state.accessType === "mount" ? await findMountByTarget(state.stagingPath) : null;
  const ours = state.accessType === "block"
    ? existing.root.endsWith(`/${basename(state.attachment!.device)}`)
    : staging != null && existing.devNumbers === staging.devNumbers;
  const isReadOnly = existing.options.includes("ro");
  if (!ours || isReadOnly !== (readOnly || state.readOnly)) {
    throw alreadyExists(
      `target ${targetPath} is already mounted (${existing.source}, ` +
        `${isReadOnly ? "ro" : "rw"}) and does not match this request`,
    );
  }
}

async function createTarget(targetPath: string, accessType: "mount" | "block"): Promise<void> {
  if (accessType === "mount") {
    await Deno.mkdir(targetPath, { recursive: true });
    return;
  }
  await Deno.mkdir(dirname(targetPath), { recursive: true });
  const file = await Deno.open(targetPath, { create: true, write: true, mode: 0o600 });
  file.close();
}
