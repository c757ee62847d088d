/**
 * The NBD device file of a volume: `/.nbd/<name>` inside its ZeroFS
 * filesystem. Its size is the block device's size. Created sparse, grown on
 * request, never shrunk (shrinking would discard the end of the disk).
 *
 * @module
 */

import {
  Errno,
  isDirectory,
  isNotFound,
  isRegularFile,
  type NinepClient,
  NinepError,
  type OpenFile,
  OpenFlags,
} from "./ninep/mod.ts";

/** ZeroFS serves the files of this root directory as NBD exports. */
export const NBD_DIR_NAME = ".nbd";
const NBD_DIR_MODE = 0o755;
const DEVICE_FILE_MODE = 0o600;

/** Options for {@linkcode ensureDeviceFile}. */
export interface EnsureDeviceFileOptions {
  /** File name in `/.nbd` = NBD export name (`disk`). */
  name: string;
  /** The least size the device must have. */
  sizeBytes: number;
}

/** What {@linkcode ensureDeviceFile} found or did. */
export interface DeviceFileResult {
  /** The device's size now (larger than asked when it already was larger). */
  sizeBytes: number;
  created: boolean;
  grown: boolean;
}

/**
 * Make `/.nbd/<name>` exist with at least `sizeBytes`: create it (sparse,
 * by setting its size — never by writing zeros), grow it when smaller, and
 * leave it alone when it is as large or larger. Grow only while no NBD
 * client is connected: the size is fixed per connection.
 *
 * @example
 * ```ts
 * const { sizeBytes, created } = await ensureDeviceFile(client, { name: "disk", sizeBytes: 1 << 30 });
 * ```
 */
export async function ensureDeviceFile(
  client: NinepClient,
  opts: EnsureDeviceFileOptions,
): Promise<DeviceFileResult> {
  checkName(opts.name);
  if (!Number.isSafeInteger(opts.sizeBytes) || opts.sizeBytes <= 0) {
    throw new RangeError(
      `device size must be a positive whole number of bytes, got ${opts.sizeBytes}`,
    );
  }
  const existing = await readDeviceFileSize(client, opts.name);
  if (existing !== null && existing >= opts.sizeBytes) {
    return { sizeBytes: existing, created: false, grown: false };
  }
  const dirFid = await openNbdDir(client);
  try {
    const created = existing === null && await createDeviceFile(client, dirFid, opts);
    if (!created) await growDeviceFile(client, dirFid, opts);
    const sizeBytes = await verifySize(client, dirFid, opts);
    return { sizeBytes, created, grown: !created && sizeBytes > (existing ?? 0) };
  } finally {
    await client.clunk(dirFid).catch(() => {});
  }
}

/**
 * Size of `/.nbd/<name>` in bytes, or null when it (or `/.nbd`) does not
 * exist. Throws when it exists but is not a regular file.
 */
export async function readDeviceFileSize(
  client: NinepClient,
  name: string,
): Promise<number | null> {
  checkName(name);
  const path = `/${NBD_DIR_NAME}/${name}`;
  try {
    const attr = await client.stat(path);
    if (!isRegularFile(attr.mode)) {
      throw new Error(
        `${path} exists but is not a regular file (mode 0${attr.mode.toString(8)}); ` +
          `it cannot be an NBD device file — inspect the volume by hand`,
      );
    }
    return attr.sizeBytes;
  } catch (e) {
    if (isNotFound(e)) return null;
    throw e;
  }
}

function checkName(name: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(name)) {
    throw new RangeError(
      `NBD export name "${name}" is not allowed: use letters, digits, ".", "_", "-" (1-128 chars)`,
    );
  }
}

/** Walk to `/.nbd`, creating it (0755) when missing — ZeroFS makes it itself, other servers may not. */
async function openNbdDir(client: NinepClient): Promise<number> {
  try {
    await client.mkdir(client.rootFid, NBD_DIR_NAME, { mode: NBD_DIR_MODE });
  } catch (e) {
    if (!(e instanceof NinepError && e.errno === Errno.EEXIST)) throw e;
  }
  const fid = await client.walk(client.rootFid, [NBD_DIR_NAME]);
  const attr = await client.getattr(fid).catch(async (e) => {
    await client.clunk(fid).catch(() => {});
    throw e;
  });
  if (!isDirectory(attr.mode)) {
    await client.clunk(fid).catch(() => {});
    throw new Error(`/${NBD_DIR_NAME} exists but is not a directory; inspect the volume by hand`);
  }
  return fid;
}

/** Create the file exclusively; false when another client created it first. */
async function createDeviceFile(
  client: NinepClient,
  dirFid: number,
  opts: EnsureDeviceFileOptions,
): Promise<boolean> {
  let file: OpenFile;
  try {
    file = await client.create(dirFid, opts.name, {
      flags: OpenFlags.WRONLY | OpenFlags.CREAT | OpenFlags.EXCL,
      mode: DEVICE_FILE_MODE,
    });
  } catch (e) {
    if (e instanceof NinepError && e.errno === Errno.EEXIST) return false;
    throw e;
  }
  await setSizeDurably(client, file, opts.sizeBytes);
  return true;
}

async function growDeviceFile(
  client: NinepClient,
  dirFid: number,
  opts: EnsureDeviceFileOptions,
): Promise<void> {
  const fid = await client.walk(dirFid, [opts.name]);
  let file: OpenFile;
  try {
    file = await client.open(fid, OpenFlags.WRONLY);
  } catch (e) {
    await client.clunk(fid).catch(() => {});
    throw e;
  }
  // Re-check on the open file: another client may have grown it past us.
  const attr = await client.getattr(file.fid).catch(async (e) => {
    await client.clunk(fid).catch(() => {});
    throw e;
  });
  if (attr.sizeBytes >= opts.sizeBytes) return await client.clunk(fid);
  await setSizeDurably(client, file, opts.sizeBytes);
}

/** Set the size on an open file, fsync, and clunk it (even on failure). */
async function setSizeDurably(client: NinepClient, file: OpenFile, sizeBytes: number) {
  try {
    await client.setattr(file.fid, { sizeBytes });
    await client.fsync(file);
  } finally {
    await client.clunk(file.fid).catch(() => {});
  }
}

async function verifySize(
  client: NinepClient,
  dirFid: number,
  opts: EnsureDeviceFileOptions,
): Promise<number> {
  const fid = await client.walk(dirFid, [opts.name]);
  try {
    const { sizeBytes } = await client.getattr(fid);
    if (sizeBytes < opts.sizeBytes) {
      throw new Error(
        `/${NBD_DIR_NAME}/${opts.name} is ${sizeBytes} bytes after setting it to ` +
          `${opts.sizeBytes}; the 9P server did not apply the size change`,
      );
    }
    return sizeBytes;
  } finally {
    await client.clunk(fid).catch(() => {});
  }
}
