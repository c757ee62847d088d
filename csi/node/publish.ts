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
 * Each target is recorded `publishing` before its bind mount (a failed
 * publish takes back the record and the target it created) and
 * `unpublishing` before its unmount; a crash in between is finished or taken
 * back by the next call or the agent's recovery (`settleInterruptedTargets`).
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
import { failpoint } from "../failpoints.ts";
import { parseCapability } from "../validate.ts";
import type { NodeContext } from "./context.ts";
import {
  makeDirNoFollow,
  makeFileNoFollow,
  parseKubeletPath,
  refuseSymlinks,
} from "./host_paths.ts";
import type {
  NodePublishVolumeRequest__Output,
  NodeUnpublishVolumeRequest__Output,
} from "../messages/mod.ts";
import { parseTargetRequest } from "./requests.ts";
import type { NodeVolumeState, PublishedTarget } from "./state.ts";

/** NodePublishVolume. */
export async function nodePublishVolume(
  ctx: NodeContext,
  req: NodePublishVolumeRequest__Output,
): Promise<object> {
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
    // Finishes a publish a crash cut short after the bind mount, and takes back an unpublish.
    const recorded = state.publishedTargets.find((t) => t.path === targetPath);
    if (recorded?.phase !== undefined || !recorded) {
      await ctx.states.write(withTarget(state, { path: targetPath, readOnly }));
    }
    return {};
  }
  // Intent first: unpublish removes only recorded targets, so a crash after the
  // bind mount must still find this one.
  const publishing = withTarget(state, { path: targetPath, readOnly, phase: "publishing" });
  await ctx.states.write(publishing);
  failpoint("publish.after-intent");
  let created = false;
  try {
    created = await createTarget(targetPath, state.accessType, ctx.kubeletDir);
    await bindMount(source, targetPath, {
      readOnly: readOnly || state.readOnly,
      // A block target is a device node: nodev would make it unusable.
      mountOptions: state.accessType === "mount" ? TENANT_MOUNT_OPTIONS : [],
    });
  } catch (e) {
    if (!(await findMountByTarget(targetPath))) {
      await ctx.states.write(withoutTarget(publishing, targetPath));
      // The publish's own error is what the caller gets; a target left behind is only logged.
      if (created) {
        await removeTarget(targetPath, ctx.kubeletDir).catch((r) =>
          ctx.log.log("warn", "could not remove the target a failed publish created", {
            target_path: targetPath,
            error: (r as Error).message,
          })
        );
      }
    }
    throw e;
  }
  failpoint("publish.after-mount");
  await ctx.states.write(withTarget(publishing, { path: targetPath, readOnly }));
  return {};
}

/**
 * NodeUnpublishVolume: record the target as `unpublishing`, unmount it,
 * remove it, forget it. Only a target this node recorded for the volume is
 * touched: a path never recorded (or already unpublished) is success without
 * touching it, an unknown volume is NOT_FOUND (the CSI spec's error for this
 * RPC; csi-sanity's clean-up accepts it).
 */
export async function nodeUnpublishVolume(
  ctx: NodeContext,
  req: NodeUnpublishVolumeRequest__Output,
): Promise<object> {
  const { volumeId, targetPath } = await parseTargetRequest(req, ctx.kubeletDir);
  const state = await ctx.states.read(volumeId);
  if (!state) {
    throw notFound(
      `volume "${volumeId}" is not staged on this node; nothing was published at ${targetPath}`,
    );
  }
  const target = state.publishedTargets.find((t) => t.path === targetPath);
  if (!target) {
    ctx.log.log("info", "target not published by this node; left untouched", {
      volume_id: volumeId,
      target_path: targetPath,
    });
    return {};
  }
  await unpublishTarget(ctx, state, target);
  return {};
}

/**
 * Unpublish one recorded target, each step skipping what is already done;
 * shared with the agent's recovery, which finishes an interrupted unpublish.
 */
export async function unpublishTarget(
  ctx: NodeContext,
  state: NodeVolumeState,
  target: PublishedTarget,
): Promise<NodeVolumeState> {
  const unpublishing = withTarget(state, { ...target, phase: "unpublishing" });
  await ctx.states.write(unpublishing);
  failpoint("unpublish.after-intent");
  await unmount(target.path);
  if (await findMountByTarget(target.path)) {
    throw internal(`target ${target.path} is still mounted after unmount; retry`);
  }
  failpoint("unpublish.after-unmount");
  await removeTarget(target.path, ctx.kubeletDir);
  failpoint("unpublish.after-remove");
  const unpublished = withoutTarget(unpublishing, target.path);
  await ctx.states.write(unpublished);
  return unpublished;
}

/**
 * At agent start, finish or take back each target a crash left half done:
 * `unpublishing` → the unpublish finished; `publishing` and mounted → published;
 * `publishing` and never mounted → the record and the (empty) target removed.
 */
export async function settleInterruptedTargets(
  ctx: NodeContext,
  state: NodeVolumeState,
): Promise<NodeVolumeState> {
  let current = state;
  for (const target of state.publishedTargets) {
    if (target.phase === "unpublishing") {
      current = await unpublishTarget(ctx, current, target);
    } else if (target.phase === "publishing") {
      const mounted = await findMountByTarget(target.path);
      current = mounted
        ? withTarget(current, { path: target.path, readOnly: target.readOnly })
        : withoutTarget(current, target.path);
      if (!mounted) await removeTarget(target.path, ctx.kubeletDir);
      await ctx.states.write(current);
    }
  }
  return current;
}

/** `state` with `target` recorded (in place of any record of the same path). */
function withTarget(state: NodeVolumeState, target: PublishedTarget): NodeVolumeState {
  const known = state.publishedTargets.some((t) => t.path === target.path);
  return {
    ...state,
    publishedTargets: known
      ? state.publishedTargets.map((t) => t.path === target.path ? target : t)
      : [...state.publishedTargets, target],
  };
}

function withoutTarget(state: NodeVolumeState, path: string): NodeVolumeState {
  return { ...state, publishedTargets: state.publishedTargets.filter((t) => t.path !== path) };
}

/** Remove an unmounted target; unmounting may reveal what was under it, so check symlinks first. */
async function removeTarget(path: string, kubeletDir: string): Promise<void> {
  await refuseSymlinks(path, "target_path", kubeletDir);
  await Deno.remove(path).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
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

/** Create the target; true when this call created it (so that a failed publish removes it). */
async function createTarget(
  targetPath: string,
  accessType: "mount" | "block",
  kubeletDir: string,
): Promise<boolean> {
  const existed = await Deno.lstat(targetPath).then(() => true, () => false);
  if (accessType === "mount") await makeDirNoFollow(targetPath, "target_path", kubeletDir);
  else await makeFileNoFollow(targetPath, "target_path", kubeletDir);
  return !existed;
}
