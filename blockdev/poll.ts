/**
 * Bounded waiting with a short backoff, for conditions the kernel or a helper
 * process makes true a little later (a FUSE file appearing, a device freeing).
 *
 * @module
 */

/** Options for {@linkcode pollUntil}. */
export interface PollOptions {
  /** Give up after this many milliseconds. */
  timeoutMs: number;
  /** First pause between checks; doubles up to {@linkcode PollOptions.maxIntervalMs}. */
  initialIntervalMs?: number;
  maxIntervalMs?: number;
}

/**
 * Call `check` until it returns a value other than `undefined`, or the time is
 * up (then `undefined`). Errors thrown by `check` propagate at once.
 *
 * @example
 * ```ts
 * const size = await pollUntil(() => fileSizeOrUndefined(path), { timeoutMs: 5_000 });
 * ```
 */
export async function pollUntil<T>(
  check: () => Promise<T | undefined> | T | undefined,
  opts: PollOptions,
): Promise<T | undefined> {
  const deadline = Date.now() + opts.timeoutMs;
  let intervalMs = opts.initialIntervalMs ?? 5;
  const maxIntervalMs = opts.maxIntervalMs ?? 100;
  while (true) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() >= deadline) return undefined;
    await sleep(Math.min(intervalMs, Math.max(0, deadline - Date.now())));
    intervalMs = Math.min(intervalMs * 2, maxIntervalMs);
  }
}

/** Resolve after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
