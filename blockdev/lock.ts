/**
 * The node-wide lock around device choice: one holder at a time within the
 * agent (an in-process queue) and across processes (an exclusive flock on a
 * file in the state root, so a debugging `attach` verb and the agent cannot
 * pick the same device).
 *
 * @module
 */

import { dirname } from "node:path";
import { pollUntil } from "./poll.ts";

/** Options for {@linkcode NodeLock}. */
export interface NodeLockOptions {
  /** How long {@linkcode NodeLock.acquire} waits before giving up. Default 30 s. */
  waitTimeoutMs?: number;
}

/** Could not take the node-wide lock in time. */
export class LockTimeoutError extends Error {
  override readonly name = "LockTimeoutError";
}

/** A held lock; release it with `using` or {@linkcode NodeLockHandle.release}. */
export interface NodeLockHandle extends AsyncDisposable {
  release(): Promise<void>;
}

/**
 * Serializes device choice across concurrent calls and processes.
 *
 * @example
 * ```ts
 * const lock = new NodeLock("/var/lib/zerofs-csi/devices.lock");
 * await using _held = await lock.acquire();
 * // pick a device, record it, connect
 * ```
 */
export class NodeLock {
  #tail: Promise<void> = Promise.resolve();
  readonly #waitTimeoutMs: number;

  constructor(readonly lockPath: string, opts: NodeLockOptions = {}) {
    this.#waitTimeoutMs = opts.waitTimeoutMs ?? 30_000;
  }

  /** Wait (bounded) for both the in-process queue and the file lock. */
  async acquire(): Promise<NodeLockHandle> {
    const deadline = Date.now() + this.#waitTimeoutMs;
    const releaseInProcess = await this.#enqueue(deadline);
    try {
      const file = await this.#lockFile(deadline);
      let released = false;
      const release = async () => {
        if (released) return;
        released = true;
        try {
          await file.unlock();
        } finally {
          file.close();
          releaseInProcess();
        }
      };
      return { release, [Symbol.asyncDispose]: release };
    } catch (e) {
      releaseInProcess();
      throw e;
    }
  }

  /** Run `fn` while holding the lock. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    const held = await this.acquire();
    try {
      return await fn();
    } finally {
      await held.release();
    }
  }

  async #enqueue(deadline: number): Promise<() => void> {
    let releaseNext!: () => void;
    const previous = this.#tail;
    const mine = new Promise<void>((resolve) => releaseNext = resolve);
    this.#tail = previous.then(() => mine);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), Math.max(0, deadline - Date.now()));
    });
    try {
      if (await Promise.race([previous.then(() => "ok" as const), timedOut]) === "timeout") {
        // Our turn may still come; pass it straight on when it does.
        previous.then(releaseNext);
        throw this.#timeoutError("another call in this agent holds it");
      }
    } finally {
      clearTimeout(timer);
    }
    return releaseNext;
  }

  async #lockFile(deadline: number): Promise<Deno.FsFile> {
    await Deno.mkdir(dirname(this.lockPath), { recursive: true });
    const file = await Deno.open(this.lockPath, { create: true, write: true, mode: 0o600 });
    const locked = await pollUntil(
      () => file.tryLock(true).then((ok) => ok ? true : undefined),
      { timeoutMs: Math.max(0, deadline - Date.now()), maxIntervalMs: 50 },
    );
    if (!locked) {
      file.close();
      throw this.#timeoutError("another process holds it");
    }
    return file;
  }

  #timeoutError(why: string): LockTimeoutError {
    return new LockTimeoutError(
      `Cannot take the node device lock ${this.lockPath} within ${this.#waitTimeoutMs} ms: ` +
        `${why}. Retry; if it persists, look for a stuck attach or detach.`,
    );
  }
}
