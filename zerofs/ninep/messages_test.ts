import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import * as m from "./messages.ts";
import { encodeFrame, FrameSplitter, NinepProtocolError } from "./wire.ts";

/** Little-endian helpers to hand-build expected bytes. */
const u16 = (v: number) => [v & 0xff, v >> 8];
const u32 = (v: number) => [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff];
const u64 = (v: number) => [...u32(v % 2 ** 32), ...u32(Math.floor(v / 2 ** 32))];
const str = (s: string) => [...u16(s.length), ...new TextEncoder().encode(s)];
const bytes = (...parts: number[][]) => new Uint8Array(parts.flat());

Deno.test("Tversion frame matches the 9P2000.L layout byte for byte", () => {
  const req = m.tversion(1 << 20, "9P2000.L");
  const frame = encodeFrame({ type: req.type, tag: m.NOTAG, body: req.body });
  assertEquals(frame, bytes(u32(21), [100], u16(0xffff), u32(1 << 20), str("9P2000.L")));
});

Deno.test("Tattach carries NOFID, uname, aname and n_uname", () => {
  const req = m.tattach(0, { uname: "root", aname: "", uid: 0 });
  assertEquals(req.type, 104);
  assertEquals(req.body, bytes(u32(0), u32(0xffffffff), str("root"), str(""), u32(0)));
});

Deno.test("Twalk encodes every name; more than 16 is refused", () => {
  assertEquals(
    m.twalk(1, 2, [".nbd", "disk"]).body,
    bytes(u32(1), u32(2), u16(2), str(".nbd"), str("disk")),
  );
  assertThrows(() => m.twalk(1, 2, Array(17).fill("a")), RangeError);
});

Deno.test("Tsetattr sets only the SIZE bit and the size field", () => {
  const body = m.tsetattr(7, { sizeBytes: 5 * 2 ** 32 + 3 }).body;
  assertEquals(
    body,
    bytes(u32(7), u32(0x8), u32(0), u32(0), u32(0), u64(5 * 2 ** 32 + 3), Array(32).fill(0)),
  );
});

Deno.test("Tlcreate, Tmkdir, Twrite, Tread, Tfsync, Trenameat, Tunlinkat bodies", () => {
  assertEquals(
    m.tlcreate(3, "disk", { flags: 0o301, mode: 0o600, gid: 0 }).body,
    bytes(u32(3), str("disk"), u32(0o301), u32(0o600), u32(0)),
  );
  assertEquals(
    m.tmkdir(0, ".nbd", { mode: 0o755, gid: 0 }).body,
    bytes(u32(0), str(".nbd"), u32(0o755), u32(0)),
  );
  assertEquals(m.twrite(4, 8, new Uint8Array([9, 9])).body, bytes(u32(4), u64(8), u32(2), [9, 9]));
  assertEquals(m.tread(4, 0, 100).body, bytes(u32(4), u64(0), u32(100)));
  assertEquals(m.tfsync(4).body, bytes(u32(4), u32(0)));
  assertEquals(
    m.trenameat({ dirFid: 1, name: "a" }, { dirFid: 2, name: "b" }).body,
    bytes(u32(1), str("a"), u32(2), str("b")),
  );
  assertEquals(m.tunlinkat(1, "x", m.AT_REMOVEDIR).body, bytes(u32(1), str("x"), u32(0x200)));
});

Deno.test("Rversion, Rwalk, Rlopen, Rread, Rwrite, Rlerror decode", () => {
  assertEquals(m.decodeRversion(bytes(u32(65536), str("9P2000.L"))), {
    msizeBytes: 65536,
    version: "9P2000.L",
  });
  const qid = [0x80, ...u32(1), ...u64(42)];
  assertEquals(m.decodeRwalk(bytes(u16(1), qid)), [{ type: 0x80, version: 1, path: 42n }]);
  assertEquals(m.decodeOpenReply(bytes(qid, u32(8192)), "Rlopen").iounit, 8192);
  assertEquals(m.decodeRread(bytes(u32(3), [1, 2, 3])), new Uint8Array([1, 2, 3]));
  assertEquals(m.decodeRwrite(bytes(u32(10))), 10);
  assertEquals(m.decodeRlerror(bytes(u32(2))), 2);
});

Deno.test("Rgetattr decodes size, blocks, mode and mtime", () => {
  const body = bytes(
    u64(0x7ff),
    [0, ...u32(0), ...u64(9)],
    u32(0o100600),
    u32(0),
    u32(0),
    u64(1), // nlink
    u64(0), // rdev
    u64(1 << 30), // size
    u64(4096), // blksize
    u64(0), // blocks
    u64(0),
    u64(0), // atime
    u64(1700000000),
    u64(5e8), // mtime
    Array(6 * 8).fill(0),
  );
  const attr = m.decodeRgetattr(body);
  assertEquals(attr.sizeBytes, 1 << 30);
  assertEquals(attr.blocks512, 0);
  assertEquals(m.isRegularFile(attr.mode), true);
  assertEquals(m.isDirectory(attr.mode), false);
  assertEquals(attr.mtimeMs, 1700000000500);
});

Deno.test("truncated or oversized replies are protocol errors", () => {
  assertThrows(() => m.decodeRversion(bytes(u32(65536))), NinepProtocolError);
  assertThrows(() => m.decodeRwrite(bytes(u32(1), [0])), NinepProtocolError);
});

Deno.test("FrameSplitter reassembles frames split across chunks and joined in one", () => {
  const a = encodeFrame({ type: 121, tag: 1, body: new Uint8Array() });
  const b = encodeFrame({ type: 119, tag: 2, body: bytes(u32(5)) });
  const stream = new Uint8Array([...a, ...b]);
  const splitter = new FrameSplitter(1024);
  const out = [
    ...splitter.push(stream.subarray(0, 2)),
    ...splitter.push(stream.subarray(2, 9)),
    ...splitter.push(stream.subarray(9)),
  ];
  assertEquals(out.map((f) => [f.type, f.tag, [...f.body]]), [[121, 1, []], [119, 2, u32(5)]]);
  assertEquals(new FrameSplitter(1024).push(stream).length, 2);
});

Deno.test("FrameSplitter rejects an NBD greeting as not 9P", () => {
  const nbd = new TextEncoder().encode("NBDMAGICIHAVEOPT");
  assertThrows(() => new FrameSplitter(1 << 20).push(nbd), NinepProtocolError);
});

Deno.test("bodies larger than the writer's first buffer encode intact", () => {
  const data = new Uint8Array(100_000).map((_, i) => i & 0xff);
  const body = m.twrite(1, 2 ** 40, data).body;
  assertEquals(body.length, 16 + data.length);
  assertEquals(body.subarray(0, 16), bytes(u32(1), u64(2 ** 40), u32(data.length)));
  assertEquals(body.subarray(16), data);
  const names = Array.from({ length: 16 }, (_, i) => `component-${i}`.repeat(3));
  const walk = m.twalk(1, 2, names).body;
  assertEquals(walk, bytes(u32(1), u32(2), u16(16), ...names.map(str)));
});
