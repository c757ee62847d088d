import { deepStrictEqual, throws } from "node:assert/strict";
import { parseVolumeRecord, type VolumeRecord, VolumeRecordError } from "./volume_record.ts";

const encode = (v: unknown) =>
  new TextEncoder().encode(typeof v === "string" ? v : JSON.stringify(v));
const good: VolumeRecord = {
  schema: 1,
  driverVersion: "0.1.0",
  fsType: "ext4",
  formatted: true,
  createdAt: "2025-01-01T00:00:00.000Z",
  formattedAt: "2025-01-01T00:00:05.000Z",
};

const pinned: VolumeRecord = {
  ...good,
  schema: 2,
  zerofs: { formattedBy: "0.16.2", servedBy: "0.19.1" },
};

Deno.test("schema 2 carries the ZeroFS pin; schema 1 (before pins) is still read", () => {
  deepStrictEqual(parseVolumeRecord(encode(pinned)), pinned);
  deepStrictEqual(parseVolumeRecord(encode(good)).zerofs, undefined);
});

Deno.test("a valid record parses to the same value", () => {
  deepStrictEqual(parseVolumeRecord(encode(good)), good);
  const { formattedAt: _, ...unformatted } = { ...good, formatted: false };
  deepStrictEqual(parseVolumeRecord(encode(unformatted)), unformatted);
});

Deno.test("corrupt or unknown records throw, never read as absent", () => {
  const bad: unknown[] = [
    "",
    "{not json",
    "null",
    "[]",
    { ...good, schema: 3 },
    { ...good, schema: 2 }, // schema 2 carries the ZeroFS pin
    { ...pinned, zerofs: { formattedBy: "0.16.2" } },
    { ...pinned, zerofs: { formattedBy: "0.16.2", servedBy: "latest" } },
    { ...pinned, zerofs: "0.16.2" },
    { ...good, schema: undefined },
    { ...good, fsType: "ntfs" },
    { ...good, formatted: "yes" },
    { ...good, createdAt: "yesterday" },
    { ...good, driverVersion: "" },
  ];
  for (const value of bad) {
    throws(() => parseVolumeRecord(encode(value)), VolumeRecordError, JSON.stringify(value));
  }
  throws(() => parseVolumeRecord(new Uint8Array([0xff, 0xfe])), VolumeRecordError);
});
