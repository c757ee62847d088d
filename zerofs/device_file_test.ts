import { rejects } from "node:assert/strict";
import { ensureDeviceFile, readDeviceFileSize } from "./device_file.ts";
import type { NinepClient } from "./ninep/mod.ts";

// Bad input is refused before any 9P traffic: a client that is touched fails the test.
const untouchable = new Proxy({}, {
  get() {
    throw new Error("the 9P client must not be used for invalid input");
  },
}) as NinepClient;

Deno.test("invalid export names and sizes are refused before any 9P request", async () => {
  for (const name of ["", "..", "a/b", ".hidden", "x".repeat(129)]) {
    await rejects(ensureDeviceFile(untouchable, { name, sizeBytes: 4096 }), RangeError, name);
    await rejects(readDeviceFileSize(untouchable, name), RangeError, name);
  }
  for (const sizeBytes of [0, -4096, 1.5, Number.MAX_SAFE_INTEGER + 2, NaN]) {
    await rejects(ensureDeviceFile(untouchable, { name: "disk", sizeBytes }), RangeError);
  }
});
