/**
 * A userspace NBD handshake (fixed newstyle) over a unix socket: proves an NBD
 * server really answers, and what it says about one export, without a kernel
 * device and without starting transmission.
 *
 * Wire format: https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md
 *
 * @module
 */

import { writeAll } from "../blockdev/mod.ts";

const NBDMAGIC = 0x4e42444d41474943n;
const IHAVEOPT = 0x49484156454f5054n;
const OPT_REPLY_MAGIC = 0x3e889045565a9n;

const FLAG_FIXED_NEWSTYLE = 1;
const FLAG_NO_ZEROES = 2;

const OPT_ABORT = 2;
const OPT_LIST = 3;
const OPT_INFO = 6;

const REP_ACK = 1;
const REP_SERVER = 2;
const REP_INFO = 3;
const REP_ERR_UNKNOWN = 0x80000006;
const REP_ERROR_BIT = 0x80000000;

const INFO_EXPORT = 0;

/** The largest option reply we accept; guards against reading garbage as a length. */
const MAX_REPLY_BYTES = 1 << 20;

/** What an NBD server says about one export. */
export interface NbdExportInfo {
  /** Size of the export as the server reports it. */
  sizeBytes: number;
  /** Transmission flags (NBD_FLAG_HAS_FLAGS, READ_ONLY, SEND_FLUSH, SEND_TRIM, …). */
  flags: number;
}

/** Transmission flag bit: the export is read-only. */
export const NBD_FLAG_READ_ONLY = 1 << 1;

/** Why a probe failed. */
export type NbdProbeFailure = "connect" | "timeout" | "protocol" | "unknown-export";

/** The NBD server could not be reached, did not speak NBD, or lacks the export. */
export class NbdProbeError extends Error {
  override readonly name = "NbdProbeError";
  constructor(message: string, readonly kind: NbdProbeFailure) {
    super(message);
  }
}

/** Options for {@linkcode probeNbdExport}. */
export interface ProbeExportOptions {
  exportName: string;
  /** Bound for connect + whole handshake. */
  timeoutMs: number;
}

/**
 * Ask the NBD server on `socketPath` about one export with NBD_OPT_INFO, then
 * NBD_OPT_ABORT (no transmission phase starts, so no I/O and no connection
 * slot stays taken).
 *
 * @throws {NbdProbeError} kind `unknown-export` when the server does not have it.
 * @example
 * ```ts
 * const { sizeBytes } = await probeNbdExport("/run/x/nbd.sock", { exportName: "disk", timeoutMs: 2000 });
 * ```
 */
export function probeNbdExport(
  socketPath: string,
  opts: ProbeExportOptions,
): Promise<NbdExportInfo> {
  return withSession(socketPath, opts.timeoutMs, async (session) => {
    const info = await requestInfo(session, opts.exportName, socketPath);
    await session.abort();
    return info;
  });
}

/**
 * List the export names of the NBD server on `socketPath` (NBD_OPT_LIST), then
 * NBD_OPT_ABORT. Succeeds with an empty list when the server has none — the
 * handshake itself is the proof that it serves.
 */
export function listNbdExports(
  socketPath: string,
  opts: { timeoutMs: number },
): Promise<string[]> {
  return withSession(socketPath, opts.timeoutMs, async (session) => {
    const names = await requestList(session, socketPath);
    await session.abort();
    return names;
  });
}

async function withSession<T>(
  socketPath: string,
  timeoutMs: number,
  work: (session: NbdSession) => Promise<T>,
): Promise<T> {
  let conn: Deno.UnixConn | undefined;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      conn?.close();
    } catch { /* already closed */ }
  }, timeoutMs);
  try {
    try {
      conn = await Deno.connect({ transport: "unix", path: socketPath });
    } catch (e) {
      throw new NbdProbeError(
        `Cannot connect to NBD socket "${socketPath}": ${errorText(e)}`,
        "connect",
      );
    }
    if (timedOut) conn.close();
    const session = new NbdSession(conn);
    await session.greet(socketPath);
    return await work(session);
  } catch (e) {
    if (timedOut) {
      throw new NbdProbeError(
        `NBD handshake on "${socketPath}" did not finish within ${timeoutMs} ms`,
        "timeout",
      );
    }
    if (e instanceof NbdProbeError) throw e;
    throw new NbdProbeError(
      `NBD handshake on "${socketPath}" failed: ${errorText(e)}`,
      "protocol",
    );
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch { /* closed by the timer or already */ }
  }
}

async function requestInfo(
  session: NbdSession,
  exportName: string,
  socketPath: string,
): Promise<NbdExportInfo> {
  const name = new TextEncoder().encode(exportName);
  const data = new Uint8Array(4 + name.length + 2);
  const view = new DataView(data.buffer);
  view.setUint32(0, name.length);
  data.set(name, 4);
  view.setUint16(4 + name.length, 0); // no extra info requests: NBD_INFO_EXPORT always comes
  await session.sendOption(OPT_INFO, data);
  let info: NbdExportInfo | undefined;
  for (;;) {
    const reply = await session.readReply(OPT_INFO);
    if (reply.type === REP_ACK) break;
    if (reply.type === REP_ERR_UNKNOWN) {
      throw new NbdProbeError(
        `NBD server on "${socketPath}" has no export "${exportName}"`,
        "unknown-export",
      );
    }
    if (reply.type & REP_ERROR_BIT) throw replyError(reply, "NBD_OPT_INFO", socketPath);
    if (reply.type !== REP_INFO || reply.data.length < 2) continue;
    const dv = new DataView(reply.data.buffer, reply.data.byteOffset, reply.data.byteLength);
    if (dv.getUint16(0) === INFO_EXPORT && reply.data.length >= 12) {
      info = { sizeBytes: Number(dv.getBigUint64(2)), flags: dv.getUint16(10) };
    }
  }
  if (!info) {
    throw new NbdProbeError(
      `NBD server on "${socketPath}" acknowledged NBD_OPT_INFO for "${exportName}" without its size`,
      "protocol",
    );
  }
  return info;
}

async function requestList(session: NbdSession, socketPath: string): Promise<string[]> {
  await session.sendOption(OPT_LIST, new Uint8Array(0));
  const names: string[] = [];
  for (;;) {
    const reply = await session.readReply(OPT_LIST);
    if (reply.type === REP_ACK) return names;
    if (reply.type & REP_ERROR_BIT) throw replyError(reply, "NBD_OPT_LIST", socketPath);
    if (reply.type !== REP_SERVER || reply.data.length < 4) continue;
    const dv = new DataView(reply.data.buffer, reply.data.byteOffset, reply.data.byteLength);
    const nameLength = dv.getUint32(0);
    names.push(new TextDecoder().decode(reply.data.subarray(4, 4 + nameLength)));
  }
}

function replyError(reply: OptionReply, option: string, socketPath: string): NbdProbeError {
  const detail = new TextDecoder().decode(reply.data);
  const code = (reply.type & ~REP_ERROR_BIT) >>> 0;
  return new NbdProbeError(
    `NBD server on "${socketPath}" refused ${option} (error ${code}${detail ? `: ${detail}` : ""})`,
    "protocol",
  );
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

interface OptionReply {
  type: number;
  data: Uint8Array;
}

/** One connection in the option-haggling phase. */
class NbdSession {
  #pending = new Uint8Array(0);

  constructor(private readonly conn: Deno.UnixConn) {}

  /** Read the server greeting and answer with our client flags. */
  async greet(socketPath: string): Promise<void> {
    const hello = await this.readExact(18);
    const dv = new DataView(hello.buffer);
    if (dv.getBigUint64(0) !== NBDMAGIC || dv.getBigUint64(8) !== IHAVEOPT) {
      throw new NbdProbeError(
        `"${socketPath}" did not greet like a newstyle NBD server`,
        "protocol",
      );
    }
    const serverFlags = dv.getUint16(16);
    if (!(serverFlags & FLAG_FIXED_NEWSTYLE)) {
      throw new NbdProbeError(
        `NBD server on "${socketPath}" does not offer fixed newstyle negotiation`,
        "protocol",
      );
    }
    const clientFlags = new Uint8Array(4);
    new DataView(clientFlags.buffer).setUint32(
      0,
      FLAG_FIXED_NEWSTYLE | (serverFlags & FLAG_NO_ZEROES),
    );
    await writeAll(this.conn, clientFlags);
  }

  async sendOption(option: number, data: Uint8Array): Promise<void> {
    const message = new Uint8Array(16 + data.length);
    const dv = new DataView(message.buffer);
    dv.setBigUint64(0, IHAVEOPT);
    dv.setUint32(8, option);
    dv.setUint32(12, data.length);
    message.set(data, 16);
    await writeAll(this.conn, message);
  }

  async readReply(option: number): Promise<OptionReply> {
    const header = await this.readExact(20);
    const dv = new DataView(header.buffer);
    if (dv.getBigUint64(0) !== OPT_REPLY_MAGIC || dv.getUint32(8) !== option) {
      throw new Error(`unexpected option reply header for option ${option}`);
    }
    const type = dv.getUint32(12);
    const length = dv.getUint32(16);
    if (length > MAX_REPLY_BYTES) throw new Error(`option reply of ${length} bytes is too long`);
    return { type, data: await this.readExact(length) };
  }

  /** Polite goodbye; the server may close without answering, which is fine too. */
  async abort(): Promise<void> {
    await this.sendOption(OPT_ABORT, new Uint8Array(0));
    try {
      await this.readReply(OPT_ABORT);
    } catch { /* closing without an ACK is allowed by the protocol */ }
  }

  private async readExact(length: number): Promise<Uint8Array> {
    while (this.#pending.length < length) {
      const chunk = new Uint8Array(Math.max(4096, length - this.#pending.length));
      const n = await this.conn.read(chunk);
      if (n === null) throw new Error("the server closed the connection");
      const joined = new Uint8Array(this.#pending.length + n);
      joined.set(this.#pending);
      joined.set(chunk.subarray(0, n), this.#pending.length);
      this.#pending = joined;
    }
    const out = this.#pending.slice(0, length);
    this.#pending = this.#pending.slice(length);
    return out;
  }
}
