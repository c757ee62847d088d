/**
 * Per-volume operation locks: a second call on a busy volume fails at once
 * with ABORTED instead of waiting (the CO retries with backoff), whether the
 * first call runs in this process or in another (an `attach` verb).
 *
 * @module
 */

import { LockTimeoutError, NodeLock } from "../blockdev/mod.ts";
import { volumePaths } from "../zerofs/mod.ts";
import { aborted } from "./errors.ts";

/** Releases a held lock; calling it twice is harmless. */
export type Release = () => void;

/** In-process locks keyed by volume ID (or CreateVolume name). */
export class VolumeLocks {
  readonly #held = new Map<string, string>();

  /**
   * Take the lock for `key` synchronously, or throw ABORTED naming the
   * operation in flight. Must be called before the handler's first await.
   */
  acquire(key: string, operation: string): Release {
    const busy = this.#held.get(key);
    if (busy !== undefined) {
      throw aborted(`operation ${busy} on volume ${key} is in progress; retry later`);
    }
    this.#held.set(key, operation);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#held.delete(key);
    };
  }

  /** Operation holding `key`, if any. */
  holder(key: string): string | undefined {
    return this.#held.get(key);
  }
}

/** A held volume file lock; releasing it twice is harmless. */
export type AsyncRelease = () => Promise<void>;

/** Another process holds the volume's file lock. */
export class VolumeBusyError extends Error {
  override readonly name = "VolumeBusyError";
  constructor(
    readonly volumeId: string,
    /** Who holds it, as the holder wrote it (`pid 123, NodeStageVolume`), if readable. */
    readonly holder: string | undefined,
  ) {
    super(
      `volume ${volumeId} is busy: another process ` +
        (holder ? `(${holder}) ` : "") + `is working on it`,
    );
  }
}

/**
 * Per-volume locks across processes: an exclusive flock on
 * `<stateRoot>/locks/<hash>.lock`, taken without waiting, so the node agent
 * and the `attach`/`detach` verbs never work on one volume at once. The
 * kernel drops a flock when its holder exits, so a crash leaves none behind.
 */
export class VolumeFileLocks {
  constructor(readonly stateRoot: string) {}

  /** Take the lock for `volumeId` at once, or throw {@linkcode VolumeBusyError}. */
  async acquire(volumeId: string, operation: string): Promise<AsyncRelease> {
    const path = volumePaths(this.stateRoot, volumeId).lockFile;
    let held;
    try {
      held = await new NodeLock(path, { waitTimeoutMs: 0 }).acquire();
    } catch (e) {
      if (!(e instanceof LockTimeoutError)) throw e;
      throw new VolumeBusyError(volumeId, await readHolder(path));
    }
    // The holder's name is a courtesy to whoever is refused; the flock is the lock,
    // and being advisory it stays held while another descriptor writes the file.
    await Deno.writeTextFile(path, `pid ${Deno.pid}, ${operation}`).catch(() => {});
    let released = false;
    return async () => {
      if (released) return;
      released = true;
      try {
        await Deno.truncate(path).catch(() => {});
      } finally {
        await held.release();
      }
    };
  }
}

async function readHolder(path: string): Promise<string | undefined> {
  const text = await Deno.readTextFile(path).catch(() => "");
  return text.trim() || undefined;
}
