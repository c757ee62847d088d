/**
 * Can this ZeroFS instance still write its volume?
 *
 * A second read-write ZeroFS on the same prefix fences the first: from then
 * on every write of the first fails, but it keeps running and keeps answering
 * handshakes from what it has cached until some write of its own reaches the
 * object store. A real write, made durable, is the only question that gets an
 * honest answer at once. (Measured with ZeroFS 0.16.2: right after another
 * node staged the volume, the fenced instance still passed its 9P and NBD
 * handshakes; this probe failed with EIO.)
 *
 * @module
 */

import { NinepClient } from "./ninep/mod.ts";

/** The probe file at the volume's root, rewritten on every probe. */
export const WRITER_PROBE_PATH = "/.zerofs-csi-alive";
const PROBE_MODE = 0o600;

/** Answer of {@linkcode probeWritable}. */
export interface WriterProbe {
  writable: boolean;
  /** Why not, when not. */
  reason?: string;
}

/**
 * Write a timestamp to {@linkcode WRITER_PROBE_PATH} through 9P and fsync it
 * (a whole-filesystem flush to the object store). Never throws.
 */
export async function probeWritable(
  ninepSocket: string,
  opts: { timeoutMs: number },
): Promise<WriterProbe> {
  let client: NinepClient | undefined;
  try {
    client = await NinepClient.connect(ninepSocket, { timeoutMs: opts.timeoutMs });
    const stamp = new TextEncoder().encode(new Date().toISOString() + "\n");
    await client.writeFile(WRITER_PROBE_PATH, stamp, { mode: PROBE_MODE });
    return { writable: true };
  } catch (e) {
    return { writable: false, reason: (e as Error).message };
  } finally {
    await client?.close().catch(() => {});
  }
}
