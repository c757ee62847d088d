/**
 * 9P2000.L message bodies the driver uses: one encoder per T-message, one
 * decoder per R-message. Pure functions over bytes, no I/O.
 *
 * @module
 */

import { ByteReader, ByteWriter, type Qid } from "./wire.ts";

/** Message type numbers (T = request, R = its reply, R = T + 1). */
export const MessageType = {
  Rlerror: 7,
  Tlopen: 12,
  Tlcreate: 14,
  Trename: 20,
  Tgetattr: 24,
  Tsetattr: 26,
  Tfsync: 50,
  Tmkdir: 72,
  Trenameat: 74,
  Tunlinkat: 76,
  Tversion: 100,
  Tattach: 104,
  Twalk: 110,
  Tread: 116,
  Twrite: 118,
  Tclunk: 120,
  Tremove: 122,
} as const;

/** "No fid" (afid in an unauthenticated Tattach). */
export const NOFID = 0xffff_ffff;
/** The tag Tversion must use. */
export const NOTAG = 0xffff;
/** The protocol dialect we speak. */
export const VERSION_9P2000L = "9P2000.L";
/** Most names one Twalk may carry. */
export const MAX_WALK_NAMES = 16;
/**
 * msize minus this is the largest Tread/Twrite payload. Linux's P9_IOHDRSZ
 * (24): one byte more than a Twrite header needs, and servers (diod) check
 * against exactly this.
 */
export const IO_HEADER_BYTES = 24;

/** Linux open(2) flags, which 9P2000.L carries as-is. */
export const OpenFlags = {
  RDONLY: 0,
  WRONLY: 1,
  RDWR: 2,
  CREAT: 0o100,
  EXCL: 0o200,
  TRUNC: 0o1000,
  DIRECTORY: 0o200000,
} as const;

/** Tsetattr `valid` bits. */
export const SetattrValid = { MODE: 0x1, UID: 0x2, GID: 0x4, SIZE: 0x8 } as const;
/** Tgetattr mask for the basic stat fields. */
export const GETATTR_BASIC = 0x7ff;
/** Tunlinkat flag: remove a directory. */
export const AT_REMOVEDIR = 0x200;

/** A request ready to be framed: its type and body. */
export interface Request {
  type: number;
  body: Uint8Array;
}

/** Attributes from Rgetattr that the driver uses. */
export interface NinepAttr {
  qid: Qid;
  /** st_mode: file type bits and permissions. */
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  sizeBytes: number;
  blockSizeBytes: number;
  /** Allocated 512-byte blocks (st_blocks): ~0 for a sparse file. */
  blocks512: number;
  mtimeMs: number;
}

const S_IFMT = 0o170000;
/** True when `mode` describes a regular file. */
export function isRegularFile(mode: number): boolean {
  return (mode & S_IFMT) === 0o100000;
}
/** True when `mode` describes a directory. */
export function isDirectory(mode: number): boolean {
  return (mode & S_IFMT) === 0o040000;
}

function request(type: number, write: (w: ByteWriter) => unknown): Request {
  const w = new ByteWriter();
  write(w);
  return { type, body: w.bytes() };
}

/** Tversion msize[4] version[s]. */
export function tversion(msizeBytes: number, version: string): Request {
  return request(MessageType.Tversion, (w) => w.u32(msizeBytes).str(version));
}

/** Tattach fid[4] afid[4] uname[s] aname[s] n_uname[4]. */
export function tattach(
  fid: number,
  opts: { uname: string; aname: string; uid: number },
): Request {
  return request(
    MessageType.Tattach,
    (w) => w.u32(fid).u32(NOFID).str(opts.uname).str(opts.aname).u32(opts.uid),
  );
}

/** Twalk fid[4] newfid[4] nwname[2] nwname*(wname[s]). */
export function twalk(fid: number, newFid: number, names: readonly string[]): Request {
  if (names.length > MAX_WALK_NAMES) {
    throw new RangeError(`Twalk carries at most ${MAX_WALK_NAMES} names, got ${names.length}`);
  }
  return request(MessageType.Twalk, (w) => {
    w.u32(fid).u32(newFid).u16(names.length);
    for (const name of names) w.str(name);
  });
}

/** Tlopen fid[4] flags[4]. */
export function tlopen(fid: number, flags: number): Request {
  return request(MessageType.Tlopen, (w) => w.u32(fid).u32(flags));
}

/** Tlcreate fid[4] name[s] flags[4] mode[4] gid[4]. */
export function tlcreate(
  dirFid: number,
  name: string,
  opts: { flags: number; mode: number; gid: number },
): Request {
  return request(
    MessageType.Tlcreate,
    (w) => w.u32(dirFid).str(name).u32(opts.flags).u32(opts.mode).u32(opts.gid),
  );
}

/** Tmkdir dfid[4] name[s] mode[4] gid[4]. */
export function tmkdir(dirFid: number, name: string, opts: { mode: number; gid: number }): Request {
  return request(MessageType.Tmkdir, (w) => w.u32(dirFid).str(name).u32(opts.mode).u32(opts.gid));
}

/** Tgetattr fid[4] request_mask[8]. */
export function tgetattr(fid: number, mask = GETATTR_BASIC): Request {
  return request(MessageType.Tgetattr, (w) => w.u32(fid).u64(mask));
}

/** Tsetattr fid[4] valid[4] mode[4] uid[4] gid[4] size[8] atime[8+8] mtime[8+8]. */
export function tsetattr(
  fid: number,
  changes: { mode?: number; sizeBytes?: number },
): Request {
  let valid = 0;
  if (changes.mode !== undefined) valid |= SetattrValid.MODE;
  if (changes.sizeBytes !== undefined) valid |= SetattrValid.SIZE;
  return request(
    MessageType.Tsetattr,
    (w) =>
      w.u32(fid).u32(valid).u32(changes.mode ?? 0).u32(0).u32(0)
        .u64(changes.sizeBytes ?? 0).u64(0).u64(0).u64(0).u64(0),
  );
}

/** Tread fid[4] offset[8] count[4]. */
export function tread(fid: number, offsetBytes: number, countBytes: number): Request {
  return request(MessageType.Tread, (w) => w.u32(fid).u64(offsetBytes).u32(countBytes));
}

/** Twrite fid[4] offset[8] count[4] data[count]. */
export function twrite(fid: number, offsetBytes: number, data: Uint8Array): Request {
  return request(MessageType.Twrite, (w) => w.u32(fid).u64(offsetBytes).u32(data.length).raw(data));
}

/** Tfsync fid[4] datasync[4] (the Linux client's layout; ZeroFS reads both). */
export function tfsync(fid: number): Request {
  return request(MessageType.Tfsync, (w) => w.u32(fid).u32(0));
}

/** Tclunk fid[4]. */
export function tclunk(fid: number): Request {
  return request(MessageType.Tclunk, (w) => w.u32(fid));
}

/** Tremove fid[4] (the fid is clunked whatever the outcome). */
export function tremove(fid: number): Request {
  return request(MessageType.Tremove, (w) => w.u32(fid));
}

/** Trenameat olddirfid[4] oldname[s] newdirfid[4] newname[s]. */
export function trenameat(
  from: { dirFid: number; name: string },
  to: { dirFid: number; name: string },
): Request {
  return request(
    MessageType.Trenameat,
    (w) => w.u32(from.dirFid).str(from.name).u32(to.dirFid).str(to.name),
  );
}

/** Trename fid[4] dfid[4] name[s] (older servers without Trenameat). */
export function trename(fid: number, to: { dirFid: number; name: string }): Request {
  return request(MessageType.Trename, (w) => w.u32(fid).u32(to.dirFid).str(to.name));
}

/** Tunlinkat dirfd[4] name[s] flags[4]. */
export function tunlinkat(dirFid: number, name: string, flags = 0): Request {
  return request(MessageType.Tunlinkat, (w) => w.u32(dirFid).str(name).u32(flags));
}

/** Rversion msize[4] version[s]. */
export function decodeRversion(body: Uint8Array): { msizeBytes: number; version: string } {
  const r = new ByteReader(body);
  const out = { msizeBytes: r.u32(), version: r.str() };
  r.end("Rversion");
  return out;
}

/** Rlerror ecode[4]. */
export function decodeRlerror(body: Uint8Array): number {
  const r = new ByteReader(body);
  const errno = r.u32();
  r.end("Rlerror");
  return errno;
}

/** Rattach / Rmkdir: qid[13]. */
export function decodeQidReply(body: Uint8Array, what: string): Qid {
  const r = new ByteReader(body);
  const qid = r.qid();
  r.end(what);
  return qid;
}

/** Rwalk nwqid[2] nwqid*(qid[13]). */
export function decodeRwalk(body: Uint8Array): Qid[] {
  const r = new ByteReader(body);
  const count = r.u16();
  const qids = Array.from({ length: count }, () => r.qid());
  r.end("Rwalk");
  return qids;
}

/** Rlopen / Rlcreate: qid[13] iounit[4]. */
export function decodeOpenReply(body: Uint8Array, what: string): { qid: Qid; iounit: number } {
  const r = new ByteReader(body);
  const out = { qid: r.qid(), iounit: r.u32() };
  r.end(what);
  return out;
}

/** Rgetattr valid[8] qid[13] mode uid gid nlink rdev size blksize blocks times… */
export function decodeRgetattr(body: Uint8Array): NinepAttr {
  const r = new ByteReader(body);
  r.u64(); // valid
  const qid = r.qid();
  const mode = r.u32();
  const uid = r.u32();
  const gid = r.u32();
  const nlink = r.u64Number();
  r.u64(); // rdev
  const sizeBytes = r.u64Number();
  const blockSizeBytes = r.u64Number();
  const blocks512 = r.u64Number();
  r.u64(); // atime_sec
  r.u64(); // atime_nsec
  const mtimeSec = r.u64Number();
  const mtimeNsec = r.u64Number();
  // ctime, btime, gen, data_version: 6 × u64 the driver does not use.
  r.raw(6 * 8);
  r.end("Rgetattr");
  const mtimeMs = mtimeSec * 1000 + Math.floor(mtimeNsec / 1e6);
  return { qid, mode, uid, gid, nlink, sizeBytes, blockSizeBytes, blocks512, mtimeMs };
}

/** Rread count[4] data[count]. */
export function decodeRread(body: Uint8Array): Uint8Array {
  const r = new ByteReader(body);
  const data = r.raw(r.u32());
  r.end("Rread");
  return data;
}

/** Rwrite count[4]. */
export function decodeRwrite(body: Uint8Array): number {
  const r = new ByteReader(body);
  const count = r.u32();
  r.end("Rwrite");
  return count;
}

/** Replies with an empty body (Rclunk, Rsetattr, Rfsync, Rrenameat, Runlinkat, …). */
export function decodeEmptyReply(body: Uint8Array, what: string): void {
  new ByteReader(body).end(what);
}
