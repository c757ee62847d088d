/**
 * Removing the socket files a stopped ZeroFS leaves behind, for both runners.
 *
 * @module
 */

/**
 * Remove a volume's 9P and NBD socket files; absent ones are fine. A dead
 * ZeroFS can leave them, and a new one must not be probed through them.
 */
export async function removeSockets(
  paths: { ninepSocket: string; nbdSocket: string },
): Promise<void> {
  for (const path of [paths.ninepSocket, paths.nbdSocket]) {
    await Deno.remove(path).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
  }
}
