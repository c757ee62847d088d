/**
 * A workaround for a crash in Deno's `node:http2` (denoland/deno#36788, open
 * for Deno 2.9.6, the newest on npm): once a connection has carried about 125
 * streams, a GOAWAY from the client (grpc-js and grpc-go send one when they
 * close a channel) aborts the whole process inside nghttp2
 * (`find_stream_on_goaway_func: Assertion 'stream->closed_next == NULL'`, or
 * `free(): invalid pointer`). Measured here: 8 of 8 server processes died
 * after 300 calls and a client close; with this cap, 0 of 24 (sequential
 * and 8-way concurrent, up to 2,000 calls).
 *
 * The server therefore closes a connection gracefully after
 * {@linkcode STREAMS_PER_CONNECTION} streams: it sends its own GOAWAY, the
 * streams in flight finish, and clients open a new connection for the next
 * call (a unix socket connect costs well under a millisecond).
 *
 * @module
 */

import type * as grpc from "@grpc/grpc-js";
import type { Http2Server, Http2Session, ServerHttp2Stream } from "node:http2";

/** Well below the ~125 streams at which the crash appears. */
export const STREAMS_PER_CONNECTION = 64;

/**
 * Apply the cap to every listener `server` has bound. grpc-js keeps its
 * HTTP/2 servers in a private field; the version is pinned, and a change
 * there fails the server's start (and its tests) instead of going unnoticed.
 */
export function capStreamsPerConnection(
  server: grpc.Server,
  cap = STREAMS_PER_CONNECTION,
): void {
  const listeners = (server as unknown as { http2Servers?: Map<Http2Server, unknown> })
    .http2Servers;
  if (!(listeners instanceof Map) || listeners.size === 0) {
    throw new Error(
      "grpc-js no longer exposes its HTTP/2 listeners: the per-connection stream cap " +
        "(a workaround for denoland/deno#36788) cannot be applied",
    );
  }
  const counts = new WeakMap<Http2Session, number>();
  for (const listener of listeners.keys()) {
    listener.on("stream", (stream: ServerHttp2Stream) => {
      const session = stream.session;
      if (!session) return;
      const count = (counts.get(session) ?? 0) + 1;
      counts.set(session, count);
      if (count === cap) session.close();
    });
  }
}
