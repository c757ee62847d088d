/**
 * The node's record of one staged volume: `<stateRoot>/v/<hash>/state.json`.
 *
 * Written before every side effect it describes (intent first), so a crashed
 * agent can always find what it attached or mounted.
 *
 * @module
 */

import type { Attachment, FsType } from "../../blockdev/mod.ts";
import {
  CorruptRecordError,
  defineRecord,
  readRecordFile,
  stateDirFiles,
  volumeDirsRoot,
  volumePaths,
  writeRecordFile,
} from "../../zerofs/mod.ts";

const SCHEMA = 1;

/** A target path the volume is published at (or is being published at or unpublished from). */
export interface PublishedTarget {
  path: string;
  readOnly: boolean;
  /**
   * Recorded before the bind mount (`publishing`) or before the unmount
   * (`unpublishing`); absent once published. A crash leaves it for the next
   * call or the agent's recovery to finish or take back.
   */
  phase?: "publishing" | "unpublishing";
}

/**
 * Where a volume stands on this node. Each phase is recorded before the first
 * effect it covers, so a crash always leaves a phase that says what to finish
 * or reverse:
 * - `staging`: NodeStageVolume started and did not finish (the retried stage
 *   finishes it, NodeUnstageVolume reverses it);
 * - `staged`: every step of the stage finished;
 * - `unstaging`: NodeUnstageVolume started; only ever completed;
 * - `expanding`: NodeExpandVolume started (see {@linkcode Expansion}); only
 *   ever completed, by the retried call or the agent's recovery.
 */
export type NodeVolumePhase = "staging" | "staged" | "unstaging" | "expanding";

/** What an interrupted NodeExpandVolume needs to be finished. */
export interface Expansion {
  /** The device size the expansion grows the device file and the device to. */
  requiredBytes: number;
}

/** Everything the node knows about one volume it staged (or is staging). */
export interface NodeVolumeState {
  schema: typeof SCHEMA;
  volumeId: string;
  stagingPath: string;
  accessType: "mount" | "block";
  /** Mount access only. */
  fsType?: FsType;
  mountFlags: string[];
  /** Staged as a ZeroFS reader with a read-only device. */
  readOnly: boolean;
  accessMode: string;
  phase: NodeVolumePhase;
  /** Recorded before connecting; absent when nothing is attached. */
  attachment?: Attachment;
  publishedTargets: PublishedTarget[];
  /** The stage grew the device file; the filesystem still has to follow. */
  fsGrowPending?: boolean;
  /** Phase `expanding` only: the expansion to finish. */
  expansion?: Expansion;
  updatedAt: string;
}

/** A state file exists but cannot be trusted (→ INTERNAL; never treated as absent). */
export class CorruptStateError extends CorruptRecordError {
  override readonly name = "CorruptStateError";
}

/** Reads and writes the per-volume state files under one state root. */
export class NodeStateStore {
  constructor(readonly stateRoot: string) {}

  /** The volume's state, or `null` when it was never staged on this node. */
  async read(volumeId: string): Promise<NodeVolumeState | null> {
    return await readState(volumePaths(this.stateRoot, volumeId).stateJson, volumeId);
  }

  /** Persist atomically; creates the volume's state directory (0700) if needed. */
  async write(state: NodeVolumeState): Promise<void> {
    const paths = volumePaths(this.stateRoot, state.volumeId);
    await Deno.mkdir(paths.dir, { recursive: true, mode: 0o700 });
    const stamped = { ...state, updatedAt: new Date().toISOString() };
    await writeRecordFile(NODE_VOLUME_STATE, paths.stateJson, stamped);
  }

  /** Forget the volume: remove state.json, then the directory if nothing else is left. */
  async remove(volumeId: string): Promise<void> {
    const paths = volumePaths(this.stateRoot, volumeId);
    await Deno.remove(paths.stateJson).catch(ignoreNotFound);
    await Deno.remove(paths.dir, { recursive: true }).catch(ignoreNotFound);
  }

  /** Every state file under the root (start-up recovery, status, metrics). */
  async list(): Promise<NodeVolumeState[]> {
    const root = volumeDirsRoot(this.stateRoot);
    const states: NodeVolumeState[] = [];
    try {
      for await (const entry of Deno.readDir(root)) {
        if (!entry.isDirectory) continue;
        const path = stateDirFiles(`${root}/${entry.name}`).stateJson;
        const state = await readState(path);
        if (state !== null) states.push(state);
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return states.sort((a, b) => a.volumeId.localeCompare(b.volumeId));
  }
}

function ignoreNotFound(e: unknown): void {
  if (!(e instanceof Deno.errors.NotFound)) throw e;
}

/** The stored form of a {@linkcode NodeVolumeState}: `state.json`, schema 1. */
const NODE_VOLUME_STATE = defineRecord<NodeVolumeState>({
  kind: "node volume state",
  schema: SCHEMA,
  remedy: `inspect it with "zerofs-csi status" before removing it by hand`,
  errorClass: CorruptStateError,
  validate: (f) => {
    f.string("volumeId", { nonEmpty: true });
    f.string("stagingPath");
    f.oneOf("accessType", ["mount", "block"]);
    return { ...f.raw } as unknown as NodeVolumeState;
  },
});

/** The state at `path` (null when absent); `volumeId` given, it must be that volume's. */
async function readState(path: string, volumeId?: string): Promise<NodeVolumeState | null> {
  const state = await readRecordFile(NODE_VOLUME_STATE, path);
  if (state && volumeId !== undefined && state.volumeId !== volumeId) {
    throw NODE_VOLUME_STATE.corrupt(path, `belongs to volume ${JSON.stringify(state.volumeId)}`);
  }
  return state;
}
