/**
 * Readiness probe for a 9P listener: a real Tversion and Tattach exchange,
 * never "the socket file exists".
 *
 * @module
 */

import { NinepClient } from "./client.ts";

/** Options for {@linkcode ninepHandshake}. */
export interface HandshakeOptions {
  /** Bound for the connect and for each of the two requests. */
  timeoutMs: number;
  /** Attach name; "" (the whole filesystem) for ZeroFS. */
  aname?: string;
}

/**
 * Connect to `socketPath`, negotiate 9P2000.L, attach as root, and hang up.
 * Resolves only when the peer really speaks 9P2000.L; rejects with
 * NinepConnectionError (no socket, refused, wrong protocol, closed),
 * NinepTimeoutError, or NinepError (the attach was refused).
 *
 * @example
 * ```ts
 * await ninepHandshake("/var/lib/zerofs-csi/v/0123456789abcdef/9p.sock", { timeoutMs: 2000 });
 * ```
 */
export async function ninepHandshake(socketPath: string, opts: HandshakeOptions): Promise<void> {
  const client = await NinepClient.connect(socketPath, {
    timeoutMs: opts.timeoutMs,
    aname: opts.aname,
    msizeBytes: 64 * 1024,
  });
  await client.close();
}
