/**
 * A 9P2000.L session: version, attach as root, fids, and the file
 * operations the driver needs (walk, mkdir, create, open, getattr, setattr,
 * read, write, fsync, rename, unlink) — fid-level and by absolute path.
 *
 * @module
 */

import { NinepConnection } from "./connection.ts";
import { Errno, NinepConnectionError, NinepError } from "./errors.ts";
import * as m from "./messages.ts";
import type { Qid } from "./wire.ts";

/** ZeroFS caps msize at 10 MiB. */
export const MAX_MSIZE_BYTES = 10 * 1024 * 1024;
/** What we propose in Tversion unless told otherwise. */
export const DEFAULT_MSIZE_BYTES = 1024 * 1024;
/** Smallest msize that leaves room for useful reads and writes. */
const MIN_MSIZE_BYTES = 4096;

/** Options for {@linkcode NinepClient.connect}. */
export interface NinepConnectOptions {
  /** Bound for the connect and for every single request. */
  timeoutMs: number;
  /** msize to propose (capped at 10 MiB); the server may lower it. */
  msizeBytes?: number;
  /** n_uname: the uid the server acts as. 0 (root) is needed to create files in `/.nbd`. */
  uid?: number;
  /** Attach name: "" is the whole filesystem for ZeroFS; diod wants its export path. */
  aname?: string;
}

/** An opened file: its fid and the largest I/O the server accepts per message. */
export interface OpenFile {
  fid: number;
  qid: Qid;
  /** Bytes per Tread/Twrite payload (from iounit and msize). */
  ioBytes: number;
}

/**
 * A connected, attached 9P2000.L client. One connection, many concurrent
 * requests. Close it when done.
 *
 * @example
 * ```ts
 * const client = await NinepClient.connect("/run/zerofs/9p.sock", { timeoutMs: 5000 });
 * try {
 *   const attr = await client.stat("/.nbd/disk");
 * } finally {
 *   await client.close();
 * }
 * ```
 */
export class NinepClient {
  /** The fid of the attach point (the filesystem root). */
  readonly rootFid = 0;
  readonly #conn: NinepConnection;
  readonly #freeFids: number[] = [];
  #nextFid = 1;
  #msizeBytes = 0;

  private constructor(conn: NinepConnection) {
    this.#conn = conn;
  }

  /** Connect, negotiate 9P2000.L and msize, and attach. */
  static async connect(socketPath: string, opts: NinepConnectOptions): Promise<NinepClient> {
    const conn = await NinepConnection.open(socketPath, { timeoutMs: opts.timeoutMs });
    const client = new NinepClient(conn);
    try {
      await client.#negotiateVersion(socketPath, opts.msizeBytes ?? DEFAULT_MSIZE_BYTES);
      await client.#attach(opts);
      return client;
    } catch (e) {
      await conn.close();
      throw e;
    }
  }

  /** The negotiated maximum message size. */
  get msizeBytes(): number {
    return this.#msizeBytes;
  }

  /** Close the connection; the server releases all fids. Idempotent. */
  async close(): Promise<void> {
    await this.#conn.close();
  }

  async #negotiateVersion(socketPath: string, proposedBytes: number): Promise<void> {
    const proposed = Math.min(Math.max(proposedBytes, MIN_MSIZE_BYTES), MAX_MSIZE_BYTES);
    const body = await this.#conn.request(m.tversion(proposed, m.VERSION_9P2000L), {
      operation: "Tversion",
      tag: m.NOTAG,
    });
    const reply = m.decodeRversion(body);
    if (reply.version !== m.VERSION_9P2000L) {
      throw new NinepConnectionError(
        `9P server at ${socketPath} does not speak ${m.VERSION_9P2000L} (it answered ` +
          `"${reply.version}"); is this socket a ZeroFS 9P listener?`,
      );
    }
    if (reply.msizeBytes < MIN_MSIZE_BYTES || reply.msizeBytes > proposed) {
      throw new NinepConnectionError(
        `9P server at ${socketPath} answered msize ${reply.msizeBytes} to our ${proposed}; ` +
          `it must be between ${MIN_MSIZE_BYTES} and what we proposed`,
      );
    }
    this.#msizeBytes = reply.msizeBytes;
    this.#conn.maxFrameBytes = reply.msizeBytes;
  }

  async #attach(opts: NinepConnectOptions): Promise<void> {
    const uid = opts.uid ?? 0;
    const body = await this.#conn.request(
      m.tattach(this.rootFid, { uname: uid === 0 ? "root" : "", aname: opts.aname ?? "", uid }),
      { operation: `Tattach aname "${opts.aname ?? ""}" as uid ${uid}` },
    );
    m.decodeQidReply(body, "Rattach");
  }

  // ---- fid-level operations -------------------------------------------------

  /** Walk from `fid` through `names` to a new fid. Missing components → ENOENT. */
  async walk(fid: number, names: readonly string[]): Promise<number> {
    const newFid = this.#allocateFid();
    try {
      let from = fid;
      for (let i = 0; i === 0 || i < names.length; i += m.MAX_WALK_NAMES) {
        const batch = names.slice(i, i + m.MAX_WALK_NAMES);
        const operation = `Twalk ${formatPath(names.slice(0, i + batch.length))}`;
        const body = await this.#conn.request(m.twalk(from, newFid, batch), { operation });
        if (m.decodeRwalk(body).length !== batch.length) {
          // A partial walk establishes no fid: the first missing name does not exist.
          throw new NinepError(operation, Errno.ENOENT);
        }
        from = newFid;
      }
      return newFid;
    } catch (e) {
      await this.#releaseAfterFailedWalk(newFid, names.length > m.MAX_WALK_NAMES);
      throw e;
    }
  }

  /** Attributes of the file behind `fid`. */
  async getattr(fid: number): Promise<m.NinepAttr> {
    const body = await this.#conn.request(m.tgetattr(fid), { operation: "Tgetattr" });
    return m.decodeRgetattr(body);
  }

  /** Change size and/or mode. Setting the size never writes data: growth is sparse. */
  async setattr(fid: number, changes: { sizeBytes?: number; mode?: number }): Promise<void> {
    const body = await this.#conn.request(m.tsetattr(fid, changes), {
      operation: `Tsetattr ${JSON.stringify(changes)}`,
    });
    m.decodeEmptyReply(body, "Rsetattr");
  }

  /** Create directory `name` inside the directory `dirFid`. */
  async mkdir(dirFid: number, name: string, opts: { mode: number }): Promise<Qid> {
    const body = await this.#conn.request(m.tmkdir(dirFid, name, { mode: opts.mode, gid: 0 }), {
      operation: `Tmkdir ${name}`,
    });
    return m.decodeQidReply(body, "Rmkdir");
  }

  /**
   * Create and open file `name` in directory `dirPath`. Returns a new fid for
   * the open file (the directory fid is not consumed).
   */
  async create(
    dirFid: number,
    name: string,
    opts: { flags: number; mode: number },
  ): Promise<OpenFile> {
    // Tlcreate turns the fid it is given into the new file: give it a clone.
    const fid = await this.walk(dirFid, []);
    try {
      const body = await this.#conn.request(
        m.tlcreate(fid, name, { flags: opts.flags, mode: opts.mode, gid: 0 }),
        { operation: `Tlcreate ${name}` },
      );
      const reply = m.decodeOpenReply(body, "Rlcreate");
      return { fid, qid: reply.qid, ioBytes: this.#ioBytes(reply.iounit) };
    } catch (e) {
      await this.clunk(fid).catch(() => {});
      throw e;
    }
  }

  /** Open the file behind `fid` (the fid becomes the open file). */
  async open(fid: number, flags: number): Promise<OpenFile> {
    const body = await this.#conn.request(m.tlopen(fid, flags), { operation: "Tlopen" });
    const reply = m.decodeOpenReply(body, "Rlopen");
    return { fid, qid: reply.qid, ioBytes: this.#ioBytes(reply.iounit) };
  }

  /** Read up to `countBytes` at `offsetBytes`; fewer (or none) at end of file. */
  async read(file: OpenFile, offsetBytes: number, countBytes: number): Promise<Uint8Array> {
    const count = Math.min(countBytes, file.ioBytes);
    const body = await this.#conn.request(m.tread(file.fid, offsetBytes, count), {
      operation: `Tread ${count} bytes at ${offsetBytes}`,
    });
    return m.decodeRread(body);
  }

  /** Write all of `data` at `offsetBytes`, in msize-sized chunks. */
  async write(file: OpenFile, offsetBytes: number, data: Uint8Array): Promise<void> {
    for (let done = 0; done < data.length;) {
      const chunk = data.subarray(done, done + file.ioBytes);
      const body = await this.#conn.request(m.twrite(file.fid, offsetBytes + done, chunk), {
        operation: `Twrite ${chunk.length} bytes at ${offsetBytes + done}`,
      });
      const written = m.decodeRwrite(body);
      if (written === 0) {
        throw new NinepError(`Twrite at ${offsetBytes + done} (server wrote 0 bytes)`, Errno.EIO);
      }
      done += written;
    }
  }

  /** Ask the server to make the open file durable. */
  async fsync(file: OpenFile): Promise<void> {
    const body = await this.#conn.request(m.tfsync(file.fid), { operation: "Tfsync" });
    m.decodeEmptyReply(body, "Rfsync");
  }

  /** Release a fid. The fid is gone afterwards even when the server reports an error. */
  async clunk(fid: number): Promise<void> {
    try {
      const body = await this.#conn.request(m.tclunk(fid), { operation: "Tclunk" });
      m.decodeEmptyReply(body, "Rclunk");
    } finally {
      if (!this.#conn.isClosed) this.#freeFids.push(fid);
    }
  }

  /** Rename within/between directories; falls back to Trename on servers without Trenameat. */
  async renameat(
    from: { dirFid: number; name: string },
    to: { dirFid: number; name: string },
  ): Promise<void> {
    const operation = `Trenameat ${from.name} → ${to.name}`;
    try {
      const body = await this.#conn.request(m.trenameat(from, to), { operation });
      m.decodeEmptyReply(body, "Rrenameat");
    } catch (e) {
      if (!isUnsupported(e)) throw e;
      await this.#renameByFid(from, to);
    }
  }

  /**
   * Remove `name` from directory `dirFid` (a directory with `removeDir`);
   * falls back to Tremove on servers without Tunlinkat (diod 1.0).
   */
  async unlinkat(dirFid: number, name: string, opts: { removeDir?: boolean } = {}): Promise<void> {
    const flags = opts.removeDir ? m.AT_REMOVEDIR : 0;
    try {
      const body = await this.#conn.request(m.tunlinkat(dirFid, name, flags), {
        operation: `Tunlinkat ${name}`,
      });
      m.decodeEmptyReply(body, "Runlinkat");
    } catch (e) {
      if (!isUnsupported(e)) throw e;
      await this.#removeByFid(dirFid, name);
    }
  }

  // ---- path-level helpers (absolute paths from the attach root) -------------

  /**
   * Walk to `path`, run `use` with the fid, and clunk it afterwards.
   *
   * @example
   * ```ts
   * const size = await client.withFid("/.nbd/disk", async (fid) => (await client.getattr(fid)).sizeBytes);
   * ```
   */
  async withFid<T>(path: string, use: (fid: number) => Promise<T>): Promise<T> {
    const fid = await this.walk(this.rootFid, splitPath(path));
    try {
      return await use(fid);
    } finally {
      await this.#clunkQuietly(fid);
    }
  }

  /** Attributes of `path`; NinepError ENOENT when it does not exist. */
  stat(path: string): Promise<m.NinepAttr> {
    return this.withFid(path, (fid) => this.getattr(fid));
  }

  /** Read a whole file, refusing files larger than `maxBytes`. */
  readFile(path: string, opts: { maxBytes: number }): Promise<Uint8Array> {
    return this.withFid(path, async (fid) => {
      const file = await this.open(fid, m.OpenFlags.RDONLY);
      const parts: Uint8Array[] = [];
      let total = 0;
      for (;;) {
        const data = await this.read(file, total, file.ioBytes);
        if (data.length === 0) break;
        total += data.length;
        if (total > opts.maxBytes) {
          throw new RangeError(
            `${path} is larger than ${opts.maxBytes} bytes; refusing to read it`,
          );
        }
        parts.push(data.slice());
      }
      return concat(parts, total);
    });
  }

  /**
   * Make `path` hold exactly `data`, created with `mode` when missing, and
   * fsync it. Not atomic: write a temporary name and {@linkcode rename} it.
   */
  async writeFile(path: string, data: Uint8Array, opts: { mode: number }): Promise<void> {
    const { dirNames, name } = splitParent(path);
    const dirFid = await this.walk(this.rootFid, dirNames);
    try {
      await this.unlinkat(dirFid, name).catch((e) => {
        if (!(e instanceof NinepError && e.errno === Errno.ENOENT)) throw e;
      });
      const file = await this.create(dirFid, name, {
        flags: m.OpenFlags.WRONLY | m.OpenFlags.CREAT | m.OpenFlags.EXCL,
        mode: opts.mode,
      });
      try {
        await this.write(file, 0, data);
        await this.fsync(file);
      } finally {
        await this.#clunkQuietly(file.fid);
      }
    } finally {
      await this.#clunkQuietly(dirFid);
    }
  }

  /** Rename `fromPath` to `toPath` (replacing it), both absolute. */
  async rename(fromPath: string, toPath: string): Promise<void> {
    const from = splitParent(fromPath);
    const to = splitParent(toPath);
    const fromDir = await this.walk(this.rootFid, from.dirNames);
    try {
      const toDir = await this.walk(this.rootFid, to.dirNames);
      try {
        await this.renameat({ dirFid: fromDir, name: from.name }, { dirFid: toDir, name: to.name });
      } finally {
        await this.#clunkQuietly(toDir);
      }
    } finally {
      await this.#clunkQuietly(fromDir);
    }
  }

  /** fsync a directory, so a rename inside it is durable. */
  fsyncDir(path: string): Promise<void> {
    return this.withFid(path, async (fid) => {
      await this.fsync(await this.open(fid, m.OpenFlags.RDONLY | m.OpenFlags.DIRECTORY));
    });
  }

  // ---- internals -----------------------------------------------------------

  #allocateFid(): number {
    return this.#freeFids.pop() ?? this.#nextFid++;
  }

  #ioBytes(iounit: number): number {
    const byMsize = this.#msizeBytes - m.IO_HEADER_BYTES;
    return iounit > 0 ? Math.min(iounit, byMsize) : byMsize;
  }

  async #releaseAfterFailedWalk(fid: number, mayExist: boolean): Promise<void> {
    // After a failed first batch the fid was never established and is free
    // again; after a later batch it exists and must be clunked.
    if (mayExist) await this.#clunkQuietly(fid);
    else if (!this.#conn.isClosed) this.#freeFids.push(fid);
  }

  async #clunkQuietly(fid: number): Promise<void> {
    if (this.#conn.isClosed) return;
    await this.clunk(fid).catch(() => {});
  }

  async #removeByFid(dirFid: number, name: string): Promise<void> {
    const fid = await this.walk(dirFid, [name]);
    try {
      const body = await this.#conn.request(m.tremove(fid), { operation: `Tremove ${name}` });
      m.decodeEmptyReply(body, "Rremove");
    } finally {
      // Tremove clunks the fid even when the removal fails.
      if (!this.#conn.isClosed) this.#freeFids.push(fid);
    }
  }

  async #renameByFid(
    from: { dirFid: number; name: string },
    to: { dirFid: number; name: string },
  ): Promise<void> {
    const fid = await this.walk(from.dirFid, [from.name]);
    try {
      const body = await this.#conn.request(m.trename(fid, to), {
        operation: `Trename ${from.name} → ${to.name}`,
      });
      m.decodeEmptyReply(body, "Rrename");
    } finally {
      await this.#clunkQuietly(fid);
    }
  }
}

function isUnsupported(e: unknown): boolean {
  return e instanceof NinepError && (e.errno === Errno.EOPNOTSUPP || e.errno === Errno.ENOSYS);
}

/** `/a/b` → `["a", "b"]`; `/` → `[]`. Rejects `.`, `..`, NUL: paths are names, not navigation. */
export function splitPath(path: string): string[] {
  if (!path.startsWith("/")) {
    throw new RangeError(`9P path "${path}" must be absolute (start with "/")`);
  }
  const names = path.split("/").filter((part) => part !== "");
  for (const name of names) {
    if (name === "." || name === ".." || name.includes("\0")) {
      throw new RangeError(`9P path "${path}" contains a forbidden component "${name}"`);
    }
  }
  return names;
}

function splitParent(path: string): { dirNames: string[]; name: string } {
  const names = splitPath(path);
  const name = names.pop();
  if (name === undefined) throw new RangeError(`9P path "${path}" names the root, not a file`);
  return { dirNames: names, name };
}

function formatPath(names: readonly string[]): string {
  return "/" + names.join("/");
}

function concat(parts: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
