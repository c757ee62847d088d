/**
 * `zerofs-csi attach` / `detach`: the same code as NodeStageVolume and
 * NodeUnstageVolume, driven from the shell to recover a node without
 * Kubernetes. Long waits print progress.
 *
 * @module
 */

import { failedPrecondition } from "../errors.ts";
import { CONTEXT_CAPACITY_BYTES, CONTEXT_FS_TYPE, DEFAULT_FS_TYPE } from "../parameters.ts";
import { type AsyncRelease, VolumeBusyError, VolumeFileLocks } from "../locks.ts";
import type { Logger } from "../log.ts";
import { type NodeContext, nodeStageVolume, unstageVolume } from "../node/mod.ts";
import { type Flags, optionalFlag, parseFlags, requireFlag, UsageError } from "./flags.ts";
import { LOG_FLAGS } from "./flags.ts";

/** A person runs these verbs: text log lines unless asked otherwise. */
const TEXT_LOG_FLAGS = { ...LOG_FLAGS, "log-format": { type: "string" as const, default: "text" } };
import { NODE_FLAGS, nodeContextFor } from "./node_verb.ts";
import { printUsage } from "./usage.ts";

const PROGRESS_EVERY_MS = 5_000;

/** Print "still working" lines while `work` runs, so a 120 s ZeroFS flush is not silence. */
async function withProgress<T>(log: Logger, what: string, work: Promise<T>): Promise<T> {
  const started = performance.now();
  const timer = setInterval(() => {
    const seconds = Math.round((performance.now() - started) / 1000);
    log.log("info", `${what}: still working`, { elapsed_s: seconds });
  }, PROGRESS_EVERY_MS);
  try {
    return await work;
  } finally {
    clearInterval(timer);
  }
}

/**
 * Take the volume's cross-process lock, the one the node agent takes for
 * every volume RPC, or fail at once saying who is working on the volume.
 */
async function lockVolume(ctx: NodeContext, volumeId: string, verb: string): Promise<AsyncRelease> {
  try {
    return await new VolumeFileLocks(ctx.stateRoot).acquire(volumeId, `${verb} verb`);
  } catch (e) {
    if (!(e instanceof VolumeBusyError)) throw e;
    throw new Error(
      `volume ${volumeId} is busy: the node agent or another verb is working on it` +
        (e.holder ? ` (${e.holder})` : "") +
        `. Wait for it to finish, or stop the node agent first, then retry.`,
    );
  }
}

/** `k=v,k=v` into a map; a pair without `=` is a usage error. */
function parseParams(text: string | undefined, verb: string): Record<string, string> {
  const params: Record<string, string> = {};
  for (const pair of (text ?? "").split(",").filter(Boolean)) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new UsageError(`--param "${pair}" is not key=value`, verb);
    params[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return params;
}

function stageRequestFrom(flags: Flags) {
  const block = flags.block === true;
  const mode: "SINGLE_NODE_READER_ONLY" | "SINGLE_NODE_WRITER" = flags["read-only"] === true
    ? "SINGLE_NODE_READER_ONLY"
    : "SINGLE_NODE_WRITER";
  const fsType = optionalFlag(flags, "fs-type") ?? DEFAULT_FS_TYPE;
  const size = optionalFlag(flags, "size");
  return {
    volume_id: requireFlag("attach", flags, "volume-id"),
    staging_target_path: requireFlag("attach", flags, "staging-path"),
    volume_capability: block
      ? { block: {}, access_mode: { mode } }
      : { mount: { fs_type: fsType, mount_flags: [] }, access_mode: { mode } },
    volume_context: {
      ...parseParams(optionalFlag(flags, "param"), "attach"),
      // Without --size, the node's default capacity applies (csi/capacity.ts).
      ...(size === undefined ? {} : { [CONTEXT_CAPACITY_BYTES]: size }),
      ...(block ? {} : { [CONTEXT_FS_TYPE]: fsType }),
    },
    publish_context: {},
    secrets: {},
  };
}

/** Run `attach`. */
export async function runAttach(argv: string[]): Promise<number> {
  const flags = parseFlags("attach", argv, {
    "volume-id": { type: "string" },
    "staging-path": { type: "string" },
    "fs-type": { type: "string" },
    block: { type: "boolean" },
    "read-only": { type: "boolean" },
    size: { type: "string" },
    param: { type: "string" },
    ...NODE_FLAGS,
    ...TEXT_LOG_FLAGS,
  });
  if (flags.help) return printUsage("attach");
  const req = stageRequestFrom(flags);
  const { ctx, log } = await nodeContextFor("attach", flags);
  const release = await lockVolume(ctx, req.volume_id, "attach");
  let state;
  try {
    await withProgress(log, "staging", nodeStageVolume(ctx, req));
    state = await ctx.states.read(req.volume_id);
  } finally {
    await release();
  }
  console.log(
    `Volume ${req.volume_id} is staged: device ${state?.attachment?.device}` +
      (state?.accessType === "mount" ? `, mounted at ${state.stagingPath}` : " (block)"),
  );
  return 0;
}

/** Run `detach`. */
export async function runDetach(argv: string[]): Promise<number> {
  const flags = parseFlags("detach", argv, {
    "volume-id": { type: "string" },
    ...NODE_FLAGS,
    ...TEXT_LOG_FLAGS,
  });
  if (flags.help) return printUsage("detach");
  const volumeId = requireFlag("detach", flags, "volume-id");
  const { ctx, log } = await nodeContextFor("detach", flags);
  const release = await lockVolume(ctx, volumeId, "detach");
  try {
    return await detachLocked(ctx, log, volumeId);
  } finally {
    await release();
  }
}

async function detachLocked(ctx: NodeContext, log: Logger, volumeId: string): Promise<number> {
  const state = await ctx.states.read(volumeId);
  if (!state) {
    console.log(`Volume ${volumeId} is not staged on this node; nothing to do.`);
    return 0;
  }
  if (state.publishedTargets.length > 0) {
    throw failedPrecondition(
      `volume "${volumeId}" is still published at ${
        state.publishedTargets.map((t) => t.path).join(", ")
      }; unmount those first (umount <path>) or let kubelet unpublish it`,
    );
  }
  await withProgress(log, "unstaging (ZeroFS flushes on stop)", unstageVolume(ctx, state));
  console.log(`Volume ${volumeId} is unstaged: unmounted, device free, ZeroFS stopped.`);
  return 0;
}
