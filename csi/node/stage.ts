/**
 * NodeStageVolume: make a volume's device ready at the staging path.
 *
 * A volume found `unstaging` is unstaged first; one found `expanding` has its
 * expansion finished first (both phases only ever complete).
 *
 * Steps, each idempotent and each undone on failure (newest first):
 *   1. record the staging intent (state.json, phase "staging")   undo: forget state
 *   2. ZeroFS running with this config and ready                  undo: stop ZeroFS
 *      (then its state directory and sockets checked private: 0700, root's)
 *      (settings resolved, then the volume's pin applied: a ConfigMap edited
 *      since CreateVolume never moves the volume, it only raises a warning)
 *   3. 9P: the record, and the device file at least the capacity
 *      (the larger of the volume context's and the publish context's)
 *   4. attach the NBD export (device recorded before connecting)  undo: detach
 *   5. mount access: format once, then mount at the staging path  undo: unmount;
 *      a device file step 3 grew (after an offline ControllerExpandVolume) gets
 *      its filesystem grown too, recorded first as fsGrowPending so that a
 *      crash leaves the rest to the next stage or to NodeExpandVolume
 *   6. record phase "staged"
 * NodeUnstageVolume runs the undo column top-down: unmount, detach, stop, forget.
 *
 * @module
 */

import {
  type Attachment,
  findMountByTarget,
  type FsType,
  growExt4Offline,
  growFilesystem,
  isZeroed,
  makeFilesystem,
  mountFilesystem,
  probeSignature,
  unmount,
} from "../../blockdev/mod.ts";
import {
  type InstanceSpec,
  type NinepClient,
  type VolumePaths,
  volumePaths,
  type ZeroFsVersion,
} from "../../zerofs/mod.ts";
import { alreadyExists, failedPrecondition } from "../errors.ts";
import { failpoint } from "../failpoints.ts";
import type { NodeContext } from "./context.ts";
import { decideFormat, FormatRefusedError } from "./format_once.ts";
import { makeDirNoFollow } from "./host_paths.ts";
import { checkPrivateVolumeFiles } from "./private_files.ts";
import type { NodeStageVolumeRequest } from "../messages/mod.ts";
import { parseStageRequest, type StageInput } from "./requests.ts";
import type { NodeVolumeState } from "./state.ts";
import { finishExpansion } from "./expand.ts";
import { StepClock } from "./step_clock.ts";
import { UndoStack } from "./undo.ts";
import { unstageVolume } from "./unstage.ts";
import {
  prepareVolumeFiles,
  recordFormatted,
  type VolumeFiles,
  withVolumeFs,
} from "./volume_files.ts";
import { instanceSpecFor } from "./zerofs_instance.ts";

const ZERO_CHECK_BYTES = 1 << 20;

/** NodeStageVolume. */
export async function nodeStageVolume(
  ctx: NodeContext,
  req: NodeStageVolumeRequest,
): Promise<object> {
  const input = await parseStageRequest(req, ctx);
  let prior = await ctx.states.read(input.volumeId);
  // An interrupted unstage is only ever completed: this stage then starts afresh.
  if (prior?.phase === "unstaging") {
    await unstageVolume(ctx, prior);
    prior = null;
  }
  if (prior) rejectIncompatible(prior, input);
  // An interrupted expansion is only ever completed, before anything else uses the device.
  if (prior?.phase === "expanding") prior = await finishExpansion(ctx, prior);
  if (prior?.phase === "staged" && await isStagingIntact(ctx, prior)) return {};
  const undo = new UndoStack();
  const clock = new StepClock();
  try {
    await stage(ctx, { input, prior, undo, clock });
  } catch (e) {
    await undo.unwind(ctx.log);
    throw e;
  }
  ctx.log.log("info", "volume staged", { volume_id: input.volumeId, steps_ms: clock.summary() });
  return {};
}

/** What one stage call carries from step to step. */
interface StageRun {
  input: StageInput;
  prior: NodeVolumeState | null;
  undo: UndoStack;
  clock: StepClock;
}

async function stage(ctx: NodeContext, run: StageRun): Promise<void> {
  const { input, prior, undo, clock } = run;
  const paths = volumePaths(ctx.stateRoot, input.volumeId);
  let state: NodeVolumeState = { ...(prior ?? initialState(input)), phase: "staging" };
  await clock.time("state", () => ctx.states.write(state));
  if (!prior) undo.push("forget state", () => ctx.states.remove(input.volumeId));
  failpoint("stage.after-intent");

  const spec = await instanceSpecFor(ctx, { ...input, paths });
  const connected = prior?.attachment && await ctx.attacher.isConnected(prior.attachment)
    ? prior.attachment
    : undefined;
  if (connected) await requireRunningZeroFs(ctx, input.volumeId, paths);
  else await clock.time("zerofs_start", () => ensureZeroFs(ctx, spec, undo));
  // Before anything connects: nobody but root can reach the unauthenticated sockets.
  await checkPrivateVolumeFiles(paths, {
    volumeId: input.volumeId,
    tightenSockets: !ctx.runner.createsPrivateSockets,
  });
  failpoint("stage.after-zerofs");

  // One 9P connection for the device file, the record, and the record's update after mkfs.
  await withVolumeFs(paths.ninepSocket, async (fs) => {
    const files = await clock.time("ninep", () =>
      prepareVolumeFiles(fs, {
        volumeId: input.volumeId,
        sizeBytes: input.capacityBytes,
        readOnly: input.readOnly,
        recordFsType: input.fsType ?? "block",
        zerofsVersion: spec.zerofsVersion,
      }));
    const attachment = connected ??
      await clock.time("attach", () => attach(ctx, { state, paths, input, undo }));
    state = { ...state, attachment };
    failpoint("stage.after-attach");
    if (input.capability.accessType === "mount") {
      const growFs = !input.readOnly && (files.deviceGrown || prior?.fsGrowPending === true);
      if (growFs) {
        state = { ...state, fsGrowPending: true };
        await ctx.states.write(state);
      }
      await formatOnceAndMount(ctx, {
        growFs,
        input,
        device: attachment.device,
        files,
        fs,
        undo,
        clock,
        zerofsVersion: spec.zerofsVersion,
      });
    }
  });
  await clock.time(
    "state",
    () => ctx.states.write({ ...state, phase: "staged", fsGrowPending: false }),
  );
}

function initialState(input: StageInput): NodeVolumeState {
  return {
    schema: 1,
    volumeId: input.volumeId,
    stagingPath: input.stagingPath,
    accessType: input.capability.accessType,
    fsType: input.fsType,
    mountFlags: input.capability.mountFlags,
    readOnly: input.readOnly,
    accessMode: input.capability.accessMode,
    phase: "staging",
    publishedTargets: [],
    updatedAt: new Date().toISOString(),
  };
}

/** The spec's "volume published but incompatible": same volume, other staging. */
function rejectIncompatible(prior: NodeVolumeState, input: StageInput): void {
  const differences: string[] = [];
  if (prior.stagingPath !== input.stagingPath) {
    differences.push(`staging path ${prior.stagingPath}`);
  }
  if (prior.accessType !== input.capability.accessType) {
    differences.push(`${prior.accessType} access`);
  }
  if (prior.fsType !== input.fsType) differences.push(`fs type ${prior.fsType}`);
  if (prior.readOnly !== input.readOnly) {
    differences.push(prior.readOnly ? "read-only" : "read-write");
  }
  if (prior.mountFlags.join(",") !== input.capability.mountFlags.join(",")) {
    // Never listed: the CSI spec says mount flags may carry sensitive values.
    differences.push("different mount flags (not shown: they may be sensitive)");
  }
  if (differences.length > 0) {
    throw alreadyExists(
      `volume "${input.volumeId}" is already staged with ${differences.join(", ")}; ` +
        `unstage it before staging it differently`,
    );
  }
}

/** Staged, and everything it stands on still there: the fast, common path of a retry. */
export async function isStagingIntact(ctx: NodeContext, state: NodeVolumeState): Promise<boolean> {
  if (!state.attachment || !(await ctx.attacher.isConnected(state.attachment))) return false;
  // A dead ZeroFS under a connected device must surface (FAILED_PRECONDITION below), not pass.
  const paths = volumePaths(ctx.stateRoot, state.volumeId);
  if (!(await ctx.runner.status(state.volumeId, paths.dir)).ready) return false;
  if (state.accessType === "block") return true;
  const mount = await findMountByTarget(state.stagingPath);
  return mount?.source === state.attachment.device;
}

async function ensureZeroFs(ctx: NodeContext, spec: InstanceSpec, undo: UndoStack): Promise<void> {
  const before = await ctx.runner.status(spec.volumeId, spec.stateDir);
  await ctx.runner.ensure(spec);
  if (!before.running) {
    undo.push("stop ZeroFS", () => ctx.runner.stop(spec.volumeId, spec.stateDir));
  }
}

/**
 * A device still connected to ZeroFS (the agent died mid-stage) is reused
 * as is: restarting ZeroFS under it would hand it a server that may have
 * lost acknowledged writes.
 */
async function requireRunningZeroFs(
  ctx: NodeContext,
  volumeId: string,
  paths: VolumePaths,
): Promise<void> {
  const status = await ctx.runner.status(volumeId, paths.dir);
  if (!status.ready) {
    throw failedPrecondition(
      `volume "${volumeId}" has a device connected but its ZeroFS is not ready ` +
        `(${status.reason ?? "not running"}); unstage the volume to recover it`,
    );
  }
}

async function attach(
  ctx: NodeContext,
  step: { state: NodeVolumeState; paths: VolumePaths; input: StageInput; undo: UndoStack },
): Promise<Attachment> {
  const { state, paths, input, undo } = step;
  if (state.attachment) await ctx.attacher.detach(state.attachment);
  const attachment = await ctx.attacher.attach(
    {
      volumeId: input.volumeId,
      socketPath: paths.nbdSocket,
      exportName: "disk",
      readOnly: input.readOnly,
      workDir: paths.dir,
    },
    (intent) => ctx.states.write({ ...state, attachment: intent }),
  );
  undo.push("detach", async () => {
    await ctx.attacher.detach(attachment);
    await ctx.states.write({ ...state, attachment: undefined });
  });
  return attachment;
}

async function formatOnceAndMount(
  ctx: NodeContext,
  step: {
    input: StageInput;
    device: string;
    files: VolumeFiles;
    fs: NinepClient;
    undo: UndoStack;
    clock: StepClock;
    /** The device grew under an existing filesystem: grow it to fill the device. */
    growFs: boolean;
    zerofsVersion: ZeroFsVersion;
  },
): Promise<void> {
  const { input, device, files, fs, undo, clock } = step;
  const fsType = input.fsType!;
  const existing = await findMountByTarget(input.stagingPath);
  if (existing?.source === device) return;
  if (existing) {
    throw failedPrecondition(
      `staging path ${input.stagingPath} already has ${existing.source} mounted; ` +
        `unmount it first`,
    );
  }
  const decision = await clock.time("probe", async () =>
    decideFormat({
      requestedFsType: fsType,
      record: files.record,
      signature: await probeSignature(device),
      // A device file this call created is sparse: it reads as zeros without reading it.
      firstMegabyteIsZero: () =>
        files.deviceCreated ? Promise.resolve(true) : isZeroed(device, { bytes: ZERO_CHECK_BYTES }),
    }));
  if (decision.action === "refuse") {
    throw new FormatRefusedError(`cannot stage volume "${input.volumeId}": ${decision.reason}`);
  }
  if (input.readOnly && (decision.action === "format" || decision.writeRecord)) {
    throw failedPrecondition(
      `volume "${input.volumeId}" has never been formatted by zerofs-csi; ` +
        `stage it read-write once before staging it read-only`,
    );
  }
  if (decision.action === "format") {
    ctx.log.log("info", "formatting new volume", {
      volume_id: input.volumeId,
      fs_type: fsType,
      device,
    });
    await clock.time("mkfs", () => makeFilesystem(device, fsType));
    failpoint("stage.after-format");
  }
  if (decision.action === "format" || decision.writeRecord) {
    await clock.time(
      "record",
      () => recordFormatted(fs, files.record, fsType, step.zerofsVersion),
    );
  }
  const growFs = step.growFs && decision.action === "mount";
  // ext4 grows unmounted (online growth needs CAP_SYS_RESOURCE); xfs and btrfs only mounted.
  if (growFs && fsType === "ext4") await clock.time("grow_fs", () => growExt4Offline(device));
  await makeDirNoFollow(input.stagingPath, "staging_target_path", ctx.kubeletDir);
  await clock.time("mount", () =>
    mountFilesystem(device, input.stagingPath, {
      fsType,
      flags: input.capability.mountFlags,
      readOnly: input.readOnly,
    }));
  undo.push("unmount", () => unmount(input.stagingPath));
  if (growFs && fsType !== "ext4") await growMounted(fsType, device, input.stagingPath, clock);
  failpoint("stage.after-mount");
}

async function growMounted(
  fsType: FsType,
  device: string,
  mountPoint: string,
  clock: StepClock,
): Promise<void> {
  await clock.time("grow_fs", () => growFilesystem(fsType, { device, mountPoint }));
}
