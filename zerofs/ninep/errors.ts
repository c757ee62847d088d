/**
 * Errors of the 9P client: a server's Rlerror (with its errno), a dead or
 * unreachable connection, a request that took too long.
 *
 * @module
 */

/** Linux errno values the driver tells apart, by name. */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  EBADF: 9,
  EACCES: 13,
  EEXIST: 17,
  EXDEV: 18,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  EFBIG: 27,
  ENOSPC: 28,
  EROFS: 30,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  EOPNOTSUPP: 95,
  ESTALE: 116,
} as const;

const ERRNO_NAMES = new Map<number, string>(
  Object.entries(Errno).map(([name, value]) => [value, name]),
);

/** `ENOENT` for 2, `errno 77` for numbers we do not name. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}

/** The server answered a request with Rlerror. */
export class NinepError extends Error {
  override readonly name = "NinepError";
  /** The Linux errno the server reported. */
  readonly errno: number;
  /** Symbolic errno (`ENOENT`), or `errno N`. */
  readonly code: string;

  constructor(operation: string, errno: number) {
    const code = errnoName(errno);
    super(`9P ${operation} failed: ${code}`);
    this.errno = errno;
    this.code = code;
  }
}

/** The connection could not be made, or broke; every pending request fails with this. */
export class NinepConnectionError extends Error {
  override readonly name: string = "NinepConnectionError";
}

/** A request got no answer in time. The connection is closed with it (see connection.ts). */
export class NinepTimeoutError extends NinepConnectionError {
  override readonly name = "NinepTimeoutError";
}

/** True when `e` is a server-reported "no such file or directory". */
export function isNotFound(e: unknown): boolean {
  return e instanceof NinepError && e.errno === Errno.ENOENT;
}
