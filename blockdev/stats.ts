/**
 * Usage of a mounted volume for NodeGetVolumeStats.
 *
 * @module
 */

import { statfs } from "node:fs/promises";

/** Capacity and usage of the filesystem holding a path. */
export interface FsStats {
  totalBytes: number;
  usedBytes: number;
  availableBytes: number;
  totalInodes: number;
  usedInodes: number;
  freeInodes: number;
}

/**
 * statfs(2) on `path`, bounded by `timeoutMs` (default 10 s) so a mount whose
 * server died cannot hang the caller. A timeout or error throws — there are no
 * invented values.
 */
export async function fsStats(path: string, opts: { timeoutMs?: number } = {}): Promise<FsStats> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(
            `Cannot read usage of ${path}: statfs did not answer within ${timeoutMs} ms ` +
              `(is the volume's ZeroFS alive?)`,
          ),
        ),
      timeoutMs,
    );
  });
  try {
    const s = await Promise.race([statfs(path), timeout]);
    const blockBytes = s.bsize;
    return {
      totalBytes: s.blocks * blockBytes,
      usedBytes: (s.blocks - s.bfree) * blockBytes,
      availableBytes: s.bavail * blockBytes,
      totalInodes: s.files,
      usedInodes: s.files - s.ffree,
      freeInodes: s.ffree,
    };
  } finally {
    clearTimeout(timer);
  }
}
