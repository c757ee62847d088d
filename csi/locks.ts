/**
 * Per-volume operation locks: a second call on a busy volume fails at once
 * with ABORTED instead of waiting (the CO retries with backoff).
 *
 * @module
 */

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
