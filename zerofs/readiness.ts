/**
 * Is a ZeroFS instance ready? Only real handshakes answer that: a 9P2000.L
 * version + attach on its 9P socket, and NBD fixed-newstyle negotiation on its
 * NBD socket — never "the socket file exists" (a listener that failed to bind
 * leaves ZeroFS running without it).
 *
 * Ordering: the node creates `/.nbd/disk` through 9P only AFTER ZeroFS has
 * started, so start-up readiness uses `exportName: ""` (NBD handshake + export
 * listing only); pass the export name once the device file exists.
 *
 * @module
 */

import { listNbdExports, probeNbdExport } from "./nbd_probe.ts";
import { ninepHandshake } from "./ninep/mod.ts";
import type { InstanceSpec } from "./runner.ts";
import { ZeroFsNotReadyError } from "./types.ts";

const FIRST_DELAY_MS = 20;
const MAX_DELAY_MS = 250;
/** One handshake attempt never takes longer than this, whatever the overall budget. */
const MAX_ATTEMPT_MS = 2_000;

/** The sockets and export a readiness check looks at. */
export type ReadinessTarget = Pick<InstanceSpec, "ninepSocket" | "nbdSocket" | "exportName">;

/** Answer of {@linkcode checkReady}. */
export interface ReadyCheck {
  ready: boolean;
  /** Why not ready (first failing handshake). */
  reason?: string;
}

/**
 * One round of handshakes: 9P, then NBD (export `exportName` must exist when
 * non-empty; "" = the NBD handshake and export listing suffice).
 */
export async function checkReady(
  target: ReadinessTarget,
  opts: { timeoutMs: number },
): Promise<ReadyCheck> {
  try {
    await ninepHandshake(target.ninepSocket, { timeoutMs: opts.timeoutMs });
  } catch (e) {
    return { ready: false, reason: `9P handshake on ${target.ninepSocket} failed: ${message(e)}` };
  }
  try {
    if (target.exportName) {
      await probeNbdExport(target.nbdSocket, {
        exportName: target.exportName,
        timeoutMs: opts.timeoutMs,
      });
    } else {
      await listNbdExports(target.nbdSocket, { timeoutMs: opts.timeoutMs });
    }
  } catch (e) {
    return { ready: false, reason: message(e) };
  }
  return { ready: true };
}

/** Options for {@linkcode waitUntilReady}. */
export interface WaitReadyOptions {
  /** Overall budget. */
  timeoutMs: number;
  /** False once the process is gone: stop waiting at once. */
  isAlive?: () => Promise<boolean>;
  /** The instance's last log lines, for the error. */
  logTail: () => Promise<string>;
}

/**
 * Poll {@linkcode checkReady} with a short backoff (20 ms doubling to 250 ms)
 * until it passes. Throws {@linkcode ZeroFsNotReadyError} carrying the last log
 * lines when the budget runs out or the process dies meanwhile.
 */
export async function waitUntilReady(
  target: ReadinessTarget & Pick<InstanceSpec, "volumeId">,
  opts: WaitReadyOptions,
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  let delayMs = FIRST_DELAY_MS;
  let reason = "not checked yet";
  for (;;) {
    if (opts.isAlive && !(await opts.isAlive())) {
      throw await notReady(target, `ZeroFS exited while starting (last check: ${reason})`, opts);
    }
    const remainingMs = deadline - Date.now();
    const check = await checkReady(target, {
      timeoutMs: Math.max(1, Math.min(MAX_ATTEMPT_MS, remainingMs)),
    });
    if (check.ready) return;
    reason = check.reason ?? "unknown";
    if (Date.now() + delayMs >= deadline) {
      throw await notReady(
        target,
        `ZeroFS was not ready within ${opts.timeoutMs} ms: ${reason}`,
        opts,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    delayMs = Math.min(delayMs * 2, MAX_DELAY_MS);
  }
}

async function notReady(
  target: Pick<InstanceSpec, "volumeId">,
  what: string,
  opts: WaitReadyOptions,
): Promise<ZeroFsNotReadyError> {
  const tail = await opts.logTail().catch((e) => `(log unavailable: ${message(e)})`);
  return new ZeroFsNotReadyError(
    `Volume "${target.volumeId}": ${what}. Check the ZeroFS log and config.`,
    tail,
  );
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
