/**
 * The node's record of one staged volume: `<stateRoot>/v/<hash>/state.json`.
 *
 * Written before every side effect it describes (intent first), so a crashed
 * agent can always find what it attached or mounted.
 *
 * @module
 */

import type { Attachment, FsType } from "../../blockdev/mod.ts";
import { readFileIfExists, volumePaths, writeFileAtomic } from "../../zerofs/mod.ts";

const SCHEMA = 1;

/** A target path the volume is published at. */
export interface PublishedTarget {
  path: string;
  readOnly: boolean;
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
  /** `staging` until every step of NodeStageVolume finished. */
  phase: "staging" | "staged";
  /** Recorded before connecting; absent when nothing is attached. */
  attachment?: Attachment;
  publishedTargets: PublishedTarget[];
  /** NodeExpandVolume grew the device; the filesystem still has to follow. */
  fsGrowPending?: boolean;
  updatedAt: string;
}

/** A state file exists but cannot be trusted (→ INTERNAL; never treated as absent). */
export class CorruptStateError extends Error {
  override readonly name = "CorruptStateError";
}

/** Reads and writes the per-volume state files under one state root. */
export class NodeStateStore {
  constructor(readonly stateRoot: string) {}

  /** The volume's state, or `null` when it was never staged on this node. */
  async read(volumeId: string): Promise<NodeVolumeState | null> {
    const path = volumePaths(this.stateRoot, volumeId).stateJson;
    const text = await readFileIfExists(path);
    return text === null ? null : parseState(text, path, volumeId);
  }

  /** Persist atomically; creates the volume's state directory (0700) if needed. */
  async write(state: NodeVolumeState): Promise<void> {
    const paths = volumePaths(this.stateRoot, state.volumeId);
    await Deno.mkdir(paths.dir, { recursive: true, mode: 0o700 });
    const stamped = { ...state, schema: SCHEMA, updatedAt: new Date().toISOString() };
    await writeFileAtomic(paths.stateJson, JSON.stringify(stamped, null, 2) + "\n");
  }

  /** Forget the volume: remove state.json, then the directory if nothing else is left. */
  async remove(volumeId: string): Promise<void> {
    const paths = volumePaths(this.stateRoot, volumeId);
    await Deno.remove(paths.stateJson).catch(ignoreNotFound);
    await Deno.remove(paths.dir, { recursive: true }).catch(ignoreNotFound);
  }

  /** Every state file under the root (start-up recovery, status, metrics). */
  async list(): Promise<NodeVolumeState[]> {
    const root = `${this.stateRoot}/v`;
    const states: NodeVolumeState[] = [];
    try {
      for await (const entry of Deno.readDir(root)) {
        if (!entry.isDirectory) continue;
        const path = `${root}/${entry.name}/state.json`;
        const text = await readFileIfExists(path);
        if (text !== null) states.push(parseState(text, path));
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

function parseState(text: string, path: string, volumeId?: string): NodeVolumeState {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new CorruptStateError(
      `state file ${path} is not valid JSON (${(e as Error).message}); ` +
        `inspect it with "zerofs-csi status" before removing it by hand`,
    );
  }
  const state = value as Partial<NodeVolumeState>;
  if (state?.schema !== SCHEMA) {
    throw new CorruptStateError(
      `state file ${path} has schema ${state?.schema}; this driver reads schema ${SCHEMA}`,
    );
  }
  if (typeof state.volumeId !== "string" || (volumeId && state.volumeId !== volumeId)) {
    throw new CorruptStateError(`state file ${path} belongs to another volume`);
  }
  return state as NodeVolumeState;
}
