/**
 * NodePublishVolume / NodeUnpublishVolume: bind the staged volume (the
 * staging directory, or the device node for block access) onto the pod's
 * target path, honouring `readonly`.
 *
 * Paths stay below the kubelet directory and no symlink there is followed
 * (`host_paths.ts`). Unpublish removes only a target this node recorded for
 * the volume (`publishedTargets`): another path is left untouched (success,
 * as it is not published there), and an unknown volume is NOT_FOUND.
 *
 * @module
 */

import { basename } from "node:path";
import {
  bindMount,
  findMountByTarget,
  type MountEntry,
  TENANT_MOUNT_OPTIONS,
  unmount,
} from "../../blockdev/mod.ts";
import {
  alreadyExists,
  failedPrecondition,
  internal,
  invalidArgument,
  notFound,
} from "../errors.ts";
import { parseCapability } from "../validate.ts";
import type { NodeContext } from "./context.ts";
import {
  makeDirNoFollow,
  makeFileNoFollow,
  parseKubeletPath,
  refuseSymlinks,
} from "./host_paths.ts";
import { parseTargetRequest, type RawRequest } from "./requests.ts";
import type { NodeVolumeState } from "./state.ts";

/** NodePublishVolume. */
export async function nodePublishVolume(ctx: NodeContext, req: RawRequest): Promise<object> {
  const { volumeId, targetPath } = await parseTargetRequest(req, ctx.kubeletDir);
  const stagingPath = await parseKubeletPath(
    req.staging_target_path,
    "staging_target_path",
    ctx.kubeletDir,
  );
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
  // Intent first: unpublish removes only recorded targets, so a crash after the
  // bind mount must still find this one.
  await ctx.states.write({
    ...state,
    publishedTargets: [
      ...state.publishedTargets.filter((t) => t.path !== targetPath),
      { path: targetPath, readOnly },
    ],
  });
  try {
    await createTarget(targetPath, state.accessType, ctx.kubeletDir);
    await bindMount(source, targetPath, {
      readOnly: readOnly || state.readOnly,
      // A block target is a device node: nodev would make it unusable.
      mountOptions: state.accessType === "mount" ? TENANT_MOUNT_OPTIONS : [],
    });
  } catch (e) {
    if (!(await findMountByTarget(targetPath))) await ctx.states.write(state);
    throw e;
  }
  return {};
}

/**
 * NodeUnpublishVolume: unmount and remove a target this node recorded for
 * the volume. Anything else is not ours to touch: a path never recorded (or
 * already unpublished) is success without touching it, an unknown volume is
 * NOT_FOUND (the CSI spec's error for this RPC; csi-sanity's clean-up
 * accepts it).
 */
export async function nodeUnpublishVolume(ctx: NodeContext, req: RawRequest): Promise<object> {
  const { volumeId, targetPath } = await parseTargetRequest(req, ctx.kubeletDir);
  const state = await ctx.states.read(volumeId);
  if (!state) {
    throw notFound(
      `volume "${volumeId}" is not staged on this node; nothing was published at ${targetPath}`,
    );
  }
  if (!state.publishedTargets.some((t) => t.path === targetPath)) {
    ctx.log.log("info", "target not published by this node; left untouched", {
      volume_id: volumeId,
      target_path: targetPath,
    });
    return {};
  }
  await unmount(targetPath);
  if (await findMountByTarget(targetPath)) {
    throw internal(`target ${targetPath} is still mounted after unmount; retry`);
  }
  // Unmounting may reveal what was under the mount: check again before removing.
  await refuseSymlinks(targetPath, "target_path", ctx.kubeletDir);
  await Deno.remove(targetPath).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
  await ctx.states.write({
    ...state,
    publishedTargets: state.publishedTargets.filter((t) => t.path !== targetPath),
  });
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

async function createTarget(
  targetPath: string,
  accessType: "mount" | "block",
  kubeletDir: string,
): Promise<void> {
  if (accessType === "mount") await makeDirNoFollow(targetPath, "target_path", kubeletDir);
  else await makeFileNoFollow(targetPath, "target_path", kubeletDir);
}
