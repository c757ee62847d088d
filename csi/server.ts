/**
 * The gRPC server on a unix socket: stale socket replaced, live one refused,
 * graceful shutdown bounded, socket file removed.
 *
 * @module
 */

import * as grpc from "@grpc/grpc-js";
import { dirname } from "node:path";
import { capStreamsPerConnection } from "./connection_stream_cap.ts";
import { csiServices, methodNames } from "./proto.ts";
import {
  type ControllerHandlers,
  type IdentityHandlers,
  type NodeHandlers,
  type PipelineContext,
  wrapService,
} from "./pipeline.ts";

/** How long in-flight calls get to finish on shutdown before they are cut. */
export const DEFAULT_SHUTDOWN_GRACE_MS = 10_000;

/** Accepts `unix:///abs/path.sock` or `/abs/path.sock`; returns the path. */
export function parseEndpoint(endpoint: string): string {
  const path = endpoint.startsWith("unix://") ? endpoint.slice("unix://".length) : endpoint;
  if (!path.startsWith("/")) {
    throw new Error(
      `endpoint "${endpoint}" must be unix:///absolute/path.sock or an absolute path`,
    );
  }
  return path;
}

/** Handlers per service; a missing service is not registered. */
export interface CsiServiceHandlers {
  Identity: IdentityHandlers;
  Controller?: ControllerHandlers;
  Node?: NodeHandlers;
}

/** A running server. */
export interface CsiServer {
  socketPath: string;
  /** Graceful stop (bounded by graceMs), then force; removes the socket. Idempotent. */
  stop(graceMs?: number): Promise<void>;
}

/** Start serving `handlers` on `endpoint`. */
export async function startCsiServer(
  endpoint: string,
  opts: { handlers: CsiServiceHandlers; pipeline: PipelineContext },
): Promise<CsiServer> {
  const socketPath = parseEndpoint(endpoint);
  await Deno.mkdir(dirname(socketPath), { recursive: true, mode: 0o750 });
  await clearStaleSocket(socketPath);
  const server = new grpc.Server();
  const defs = csiServices();
  for (const name of ["Identity", "Controller", "Node"] as const) {
    const h = opts.handlers[name];
    if (!h) continue;
    server.addService(defs[name], wrapService(opts.pipeline, methodNames(defs[name]), h));
  }
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(`unix://${socketPath}`, grpc.ServerCredentials.createInsecure(), (err) => {
      if (err) reject(new Error(`cannot listen on ${socketPath}: ${err.message}`));
      else resolve();
    });
  });
  capStreamsPerConnection(server);
  let stopping: Promise<void> | undefined;
  return {
    socketPath,
    stop: (graceMs = DEFAULT_SHUTDOWN_GRACE_MS) =>
      stopping ??= shutdown(server, { socketPath, graceMs }),
  };
}

async function shutdown(
  server: grpc.Server,
  o: { socketPath: string; graceMs: number },
): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const graceful = new Promise<boolean>((resolve) => server.tryShutdown(() => resolve(true)));
  const bound = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), o.graceMs);
  });
  const clean = await Promise.race([graceful, bound]);
  clearTimeout(timer);
  if (!clean) server.forceShutdown();
  await Deno.remove(o.socketPath).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
}

/**
 * A socket file left by a dead process is removed; one with a live listener
 * means another driver instance runs here, which must not be taken over.
 */
async function clearStaleSocket(path: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw e;
  }
  if (!info.isSocket) {
    throw new Error(`${path} exists and is not a socket; remove it or choose another --endpoint`);
  }
  try {
    const conn = await Deno.connect({ transport: "unix", path });
    conn.close();
  } catch {
    await Deno.remove(path);
    return;
  }
  throw new Error(
    `another process is serving on ${path}; stop it first or choose another --endpoint`,
  );
}
