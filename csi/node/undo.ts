/**
 * Staging as a transaction: each finished step pushes how to take it back;
 * on failure the steps unwind in reverse order.
 *
 * @module
 */

import type { Logger } from "../log.ts";

/** A stack of compensating actions, run newest first. */
export class UndoStack {
  #steps: { name: string; undo: () => Promise<void> }[] = [];

  /** Remember how to take back the step just completed. */
  push(name: string, undo: () => Promise<void>): void {
    this.#steps.push({ name, undo });
  }

  /**
   * Run every compensating action newest first. A failing undo is logged and
   * the rest still run: the original error is what the caller reports.
   */
  async unwind(log: Logger): Promise<void> {
    for (const step of this.#steps.reverse()) {
      try {
        await step.undo();
      } catch (e) {
        log.log("warn", "undo step failed", {
          step: step.name,
          error: e instanceof Error ? e.message : String(e),
        });
      }
    }
    this.#steps = [];
  }
}
