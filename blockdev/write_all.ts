/**
 * Writing a whole buffer to something that may take only part of it per call
 * (a file, a unix socket).
 *
 * @module
 */

/** Something bytes can be written to, a part at a time (`Deno.FsFile`). */
export interface PartialWriter {
  /** Writes some of `bytes` and resolves with how many: possibly fewer than given. */
  write(bytes: Uint8Array): Promise<number>;
}

/**
 * Write every byte of `bytes`: a single `write` may write fewer than asked,
 * so loop until all are written. A write of zero bytes is an error, not a
 * reason to spin.
 */
export async function writeAll(file: PartialWriter, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    const n = await file.write(bytes.subarray(written));
    if (n <= 0) {
      throw new Error(`write made no progress after ${written} of ${bytes.length} bytes`);
    }
    written += n;
  }
}
