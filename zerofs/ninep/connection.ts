/**
 * One 9P transport over a unix socket: frames requests, multiplexes tags,
 * bounds every request by a timeout, and fails every pending request when
 * the connection dies.
 *
 * @module
 */

import { NinepConnectionError, NinepError, NinepTimeoutError } from "./errors.ts";
import { decodeRlerror, MessageType, NOTAG, type Request } from "./messages.ts";
import { encodeFrame, type Frame, FrameSplitter, NinepProtocolError } from "./wire.ts";

const READ_CHUNK_BYTES = 256 * 1024;
/** Before Tversion settles msize, accept replies up to this size. */
const PRE_VERSION_MAX_FRAME_BYTES = 64 * 1024;

interface Pending {
  operation: string;
  expectType: number;
  resolve(body: Uint8Array): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

/** Options for {@linkcode NinepConnection.open}. */
export interface ConnectionOptions {
  /** Bound for the connect and for every single request. */
  timeoutMs: number;
}

/** Per-request options. */
export interface RequestOptions {
  /** Named in errors, e.g. `Twalk .nbd/disk`. */
  operation: string;
  /** Only Tversion passes NOTAG. */
  tag?: number;
}

/**
 * A connected 9P transport. Use {@linkcode NinepClient} rather than this
 * directly; it owns the session (version, attach, fids).
 */
export class NinepConnection {
  readonly #conn: Deno.UnixConn;
  readonly #socketPath: string;
  readonly #timeoutMs: number;
  readonly #splitter = new FrameSplitter(PRE_VERSION_MAX_FRAME_BYTES);
  readonly #pending = new Map<number, Pending>();
  readonly #readLoop: Promise<void>;
  #writeChain: Promise<void> = Promise.resolve();
  #nextTag = 0;
  #failure: Error | null = null;

  private constructor(conn: Deno.UnixConn, socketPath: string, timeoutMs: number) {
    this.#conn = conn;
    this.#socketPath = socketPath;
    this.#timeoutMs = timeoutMs;
    this.#readLoop = this.#readFrames();
  }

  /** Connect to a 9P server's unix socket, within `timeoutMs`. */
  static async open(socketPath: string, opts: ConnectionOptions): Promise<NinepConnection> {
    const conn = await connectWithin(socketPath, opts.timeoutMs);
    return new NinepConnection(conn, socketPath, opts.timeoutMs);
  }

  /** Largest frame accepted from the peer; set to the negotiated msize after Tversion. */
  set maxFrameBytes(bytes: number) {
    this.#splitter.maxFrameBytes = bytes;
  }

  /** True once the connection failed or was closed. */
  get isClosed(): boolean {
    return this.#failure !== null;
  }

  /**
   * Send one request and wait for its reply body. Rejects with
   * {@linkcode NinepError} for Rlerror, {@linkcode NinepTimeoutError} when no
   * answer comes within the timeout, {@linkcode NinepConnectionError} when the
   * connection is or becomes dead.
   */
  request(req: Request, opts: RequestOptions): Promise<Uint8Array> {
    if (this.#failure) return Promise.reject(this.#failure);
    const tag = opts.tag ?? this.#allocateTag();
    return new Promise<Uint8Array>((resolve, reject) => {
      // A late reply would leave the server's state (a fid, a created file)
      // unknown to us, and its tag cannot be reused safely: a timeout ends
      // the whole connection. Callers open a fresh one.
      const timer = setTimeout(() => {
        this.#fail(
          new NinepTimeoutError(
            `9P ${opts.operation} got no answer within ${this.#timeoutMs} ms from ` +
              `${this.#socketPath}; the server is hung or overloaded, the connection was closed`,
          ),
        );
      }, this.#timeoutMs);
      this.#pending.set(tag, {
        operation: opts.operation,
        expectType: req.type + 1,
        resolve,
        reject,
        timer,
      });
      this.#send(encodeFrame({ type: req.type, tag, body: req.body }));
    });
  }

  /** Close the socket; pending requests reject. Idempotent. */
  async close(): Promise<void> {
    this.#fail(new NinepConnectionError(`9P connection to ${this.#socketPath} was closed`));
    await this.#readLoop;
  }

  #allocateTag(): number {
    for (let tried = 0; tried < NOTAG; tried++) {
      const tag = this.#nextTag;
      this.#nextTag = (this.#nextTag + 1) % NOTAG;
      if (!this.#pending.has(tag)) return tag;
    }
    throw new NinepConnectionError("9P client has 65535 requests in flight; no tag is free");
  }

  #send(frame: Uint8Array): void {
    this.#writeChain = this.#writeChain.then(async () => {
      if (this.#failure) return;
      try {
        for (let written = 0; written < frame.length;) {
          written += await this.#conn.write(frame.subarray(written));
        }
      } catch (e) {
        this.#fail(this.#brokenError("write to", e));
      }
    });
  }

  async #readFrames(): Promise<void> {
    try {
      for (;;) {
        const chunk = new Uint8Array(READ_CHUNK_BYTES);
        const count = await this.#conn.read(chunk);
        if (count === null) {
          this.#fail(
            new NinepConnectionError(
              `9P server at ${this.#socketPath} closed the connection` +
                (this.#pending.size ? ` with ${this.#pending.size} request(s) unanswered` : ""),
            ),
          );
          return;
        }
        for (const frame of this.#splitter.push(chunk.subarray(0, count))) this.#dispatch(frame);
      }
    } catch (e) {
      this.#fail(e instanceof NinepProtocolError ? e : this.#brokenError("read from", e));
    }
  }

  #dispatch(frame: Frame): void {
    const pending = this.#pending.get(frame.tag);
    if (!pending) {
      throw new NinepProtocolError(`9P server sent a reply with unknown tag ${frame.tag}`);
    }
    this.#pending.delete(frame.tag);
    clearTimeout(pending.timer);
    if (frame.type === MessageType.Rlerror) {
      pending.reject(new NinepError(pending.operation, decodeRlerror(frame.body)));
    } else if (frame.type !== pending.expectType) {
      const error = new NinepProtocolError(
        `9P ${pending.operation}: expected reply type ${pending.expectType}, got ${frame.type}`,
      );
      pending.reject(error);
      throw error;
    } else {
      pending.resolve(frame.body);
    }
  }

  #brokenError(direction: string, cause: unknown): Error {
    if (this.#failure) return this.#failure;
    const reason = cause instanceof Error ? cause.message : String(cause);
    return new NinepConnectionError(
      `9P connection broke (${direction} ${this.#socketPath}): ${reason}`,
    );
  }

  #fail(error: Error): void {
    if (this.#failure) return;
    this.#failure = error;
    for (const pending of this.#pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(error);
    }
    this.#pending.clear();
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }
}

async function connectWithin(socketPath: string, timeoutMs: number): Promise<Deno.UnixConn> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const connecting = Deno.connect({ transport: "unix", path: socketPath });
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      connecting.then((c) => c.close(), () => {});
      reject(
        new NinepTimeoutError(
          `could not connect to 9P socket ${socketPath} within ${timeoutMs} ms`,
        ),
      );
    }, timeoutMs);
  });
  try {
    return await Promise.race([connecting, timedOut]);
  } catch (e) {
    if (e instanceof NinepConnectionError) throw e;
    throw new NinepConnectionError(
      `could not connect to 9P socket ${socketPath}: ${connectReason(e)}`,
    );
  } finally {
    clearTimeout(timer);
  }
}

function connectReason(e: unknown): string {
  if (e instanceof Deno.errors.NotFound) {
    return "the socket does not exist (is the server running, is the path right?)";
  }
  if (e instanceof Deno.errors.ConnectionRefused) {
    return "connection refused (the socket file is stale: nothing listens on it)";
  }
  return e instanceof Error ? e.message : String(e);
}
