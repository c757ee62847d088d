/**
 * Per-step durations of one node operation, logged when it finishes so the
 * benchmark can separate the driver's own time from ZeroFS start-up and mkfs.
 *
 * @module
 */

/** Accumulates milliseconds per named step. */
export class StepClock {
  readonly #steps: Record<string, number> = {};
  readonly #startedAt = performance.now();

  /** Run `fn` and add its duration to step `name`. */
  async time<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      this.#steps[name] = round((this.#steps[name] ?? 0) + performance.now() - t0);
    }
  }

  /** Every step so far plus `total`. */
  summary(): Record<string, number> {
    return { ...this.#steps, total: round(performance.now() - this.#startedAt) };
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
