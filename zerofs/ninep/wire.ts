/**
 * 9P primitive encoding: little-endian integers, length-prefixed strings,
 * qids, and the `size[4] type[1] tag[2]` frame around every message.
 *
 * @module
 */

/** Bytes in the frame header: size[4] type[1] tag[2]. */
export const HEADER_BYTES = 7;

/** A 9P qid: the server's identity for a file. */
export interface Qid {
  /** QTDIR (0x80), QTSYMLINK (0x02), QTFILE (0x00), … */
  type: number;
  version: number;
  /** Unique per file on the server; a bigint because it is a full u64. */
  path: bigint;
}

/** One decoded frame. */
export interface Frame {
  type: number;
  tag: number;
  body: Uint8Array;
}

/** Malformed bytes from the peer: it does not speak 9P, or the stream is corrupt. */
export class NinepProtocolError extends Error {
  override readonly name = "NinepProtocolError";
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Appends 9P fields to a growing byte buffer. */
export class ByteWriter {
  #bytes = new Uint8Array(64);
  #view = new DataView(this.#bytes.buffer);
  #length = 0;

  #reserve(extra: number): number {
    const at = this.#length;
    const needed = at + extra;
    if (needed > this.#bytes.length) {
      const grown = new Uint8Array(Math.max(needed, this.#bytes.length * 2));
      grown.set(this.#bytes.subarray(0, at));
      this.#bytes = grown;
      this.#view = new DataView(grown.buffer);
    }
    this.#length = needed;
    return at;
  }

  u8(value: number): this {
    const at = this.#reserve(1); // grows the buffer: read #view after
    this.#view.setUint8(at, value);
    return this;
  }
  u16(value: number): this {
    const at = this.#reserve(2); // grows the buffer: read #view after
    this.#view.setUint16(at, value, true);
    return this;
  }
  u32(value: number): this {
    const at = this.#reserve(4); // grows the buffer: read #view after
    this.#view.setUint32(at, value, true);
    return this;
  }
  u64(value: number | bigint): this {
    const at = this.#reserve(8); // grows the buffer: read #view after
    this.#view.setBigUint64(at, BigInt(value), true);
    return this;
  }
  /** A string: len[2] then UTF-8 bytes. */
  str(value: string): this {
    const bytes = encoder.encode(value);
    if (bytes.length > 0xffff) {
      throw new RangeError(`9P string of ${bytes.length} bytes exceeds 65535`);
    }
    this.u16(bytes.length);
    return this.raw(bytes);
  }
  raw(bytes: Uint8Array): this {
    const at = this.#reserve(bytes.length);
    this.#bytes.set(bytes, at);
    return this;
  }
  /** The bytes written so far (a copy-free view). */
  bytes(): Uint8Array {
    return this.#bytes.subarray(0, this.#length);
  }
}

/** Reads 9P fields from a message body, throwing on a short buffer. */
export class ByteReader {
  #view: DataView;
  #offset = 0;

  constructor(readonly bytes: Uint8Array) {
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  #take(count: number): number {
    const at = this.#offset;
    if (at + count > this.bytes.length) {
      throw new NinepProtocolError(
        `9P message truncated: needed ${count} bytes at offset ${at}, body has ${this.bytes.length}`,
      );
    }
    this.#offset += count;
    return at;
  }

  u8(): number {
    return this.#view.getUint8(this.#take(1));
  }
  u16(): number {
    return this.#view.getUint16(this.#take(2), true);
  }
  u32(): number {
    return this.#view.getUint32(this.#take(4), true);
  }
  u64(): bigint {
    return this.#view.getBigUint64(this.#take(8), true);
  }
  /** A u64 that must fit a JS number (sizes, counts). */
  u64Number(): number {
    const value = this.u64();
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new NinepProtocolError(`9P value ${value} does not fit a safe integer`);
    }
    return Number(value);
  }
  str(): string {
    const length = this.u16();
    const at = this.#take(length);
    try {
      return decoder.decode(this.bytes.subarray(at, at + length));
    } catch {
      throw new NinepProtocolError("9P string is not valid UTF-8");
    }
  }
  raw(count: number): Uint8Array {
    const at = this.#take(count);
    return this.bytes.subarray(at, at + count);
  }
  qid(): Qid {
    return { type: this.u8(), version: this.u32(), path: this.u64() };
  }
  /** Throws when bytes are left over: a sign the peer speaks another dialect. */
  end(what: string): void {
    if (this.#offset !== this.bytes.length) {
      throw new NinepProtocolError(
        `${what} has ${this.bytes.length - this.#offset} unexpected trailing bytes`,
      );
    }
  }
}

/** Wrap a body into a complete frame. */
export function encodeFrame(frame: Frame): Uint8Array {
  const size = HEADER_BYTES + frame.body.length;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, size, true);
  view.setUint8(4, frame.type);
  view.setUint16(5, frame.tag, true);
  out.set(frame.body, HEADER_BYTES);
  return out;
}

/**
 * Splits a byte stream into frames. Chunks go in as they arrive from the
 * socket; complete frames come out. A frame larger than `maxFrameBytes` is a
 * protocol error — it also catches peers that speak something else (an NBD
 * server's greeting reads as a ~1.3 GB frame).
 */
export class FrameSplitter {
  #chunks: Uint8Array[] = [];
  #buffered = 0;

  constructor(public maxFrameBytes: number) {}

  push(chunk: Uint8Array): Frame[] {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    const frames: Frame[] = [];
    for (;;) {
      const size = this.#peekSize();
      if (size === null || this.#buffered < size) return frames;
      const bytes = this.#take(size);
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      frames.push({
        type: view.getUint8(4),
        tag: view.getUint16(5, true),
        body: bytes.subarray(HEADER_BYTES),
      });
    }
  }

  #peekSize(): number | null {
    if (this.#buffered < 4) return null;
    const head = this.#chunks[0].length >= 4 ? this.#chunks[0] : this.#take(this.#buffered, true);
    const size = new DataView(head.buffer, head.byteOffset, 4).getUint32(0, true);
    if (size < HEADER_BYTES || size > this.maxFrameBytes) {
      throw new NinepProtocolError(
        `peer sent a frame of ${size} bytes (allowed ${HEADER_BYTES}..${this.maxFrameBytes}); ` +
          `it does not speak 9P or the stream is corrupt`,
      );
    }
    return size;
  }

  /** Remove `count` bytes from the front (or, with `keep`, merge them into one chunk). */
  #take(count: number, keep = false): Uint8Array {
    const first = this.#chunks[0];
    let out: Uint8Array;
    if (first.length >= count) {
      out = first.subarray(0, count);
    } else {
      out = new Uint8Array(count);
      let filled = 0;
      for (const chunk of this.#chunks) {
        const part = chunk.subarray(0, count - filled);
        out.set(part, filled);
        filled += part.length;
        if (filled === count) break;
      }
    }
    if (keep) {
      const rest = this.#chunksAfter(count);
      this.#chunks = [out, ...rest];
      return out;
    }
    this.#chunks = this.#chunksAfter(count);
    this.#buffered -= count;
    return out;
  }

  #chunksAfter(count: number): Uint8Array[] {
    const rest: Uint8Array[] = [];
    let skipped = 0;
    for (const chunk of this.#chunks) {
      if (skipped >= count) {
        rest.push(chunk);
      } else if (skipped + chunk.length > count) {
        rest.push(chunk.subarray(count - skipped));
        skipped = count;
      } else {
        skipped += chunk.length;
      }
    }
    return rest;
  }
}
