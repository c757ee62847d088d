import assert from "node:assert/strict";
import type * as grpc from "@grpc/grpc-js";
import { capStreamsPerConnection } from "./connection_stream_cap.ts";

Deno.test("the stream cap refuses to start silently when grpc-js hides its listeners", () => {
  assert.throws(
    () => capStreamsPerConnection({} as grpc.Server),
    /per-connection stream cap .*denoland\/deno#36788/,
  );
  assert.throws(
    () => capStreamsPerConnection({ http2Servers: new Map() } as unknown as grpc.Server),
    /cannot be applied/,
  );
});
