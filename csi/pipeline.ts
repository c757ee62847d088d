/**
 * The one wrapper around every RPC handler: per-volume lock, timing, one
 * structured log line, secret redaction and error mapping. Handlers are plain
 * async functions; the pipeline turns them into grpc-js unary handlers.
 *
 * @module
 */

import type * as grpc from "@grpc/grpc-js";
import { aborted, Code, codeName, CsiError, toCsiError } from "./errors.ts";
import { VolumeBusyError, type VolumeFileLocks, type VolumeLocks } from "./locks.ts";
import type { Logger } from "./log.ts";
import { knownSecretValues, redact, scrubValues, secretValuesOf } from "./redact.ts";
import { ZeroFsNotReadyError } from "../zerofs/mod.ts";
import type {
  ControllerHandlers,
  CsiRequest,
  CsiResponse,
  IdentityHandlers,
  NodeHandlers,
} from "./messages/mod.ts";

export type { ControllerHandlers, CsiRequest, CsiResponse, IdentityHandlers, NodeHandlers };

/** One RPC handler: the decoded request in, the response out. */
export type Handler<Req = CsiRequest, Res = CsiResponse> = (req: Req) => Promise<Res>;
/**
 * A service's handlers keyed by RPC name (`CreateVolume`, `NodeStageVolume`,
 * …): {@linkcode IdentityHandlers}, {@linkcode ControllerHandlers} or
 * {@linkcode NodeHandlers}.
 */
export type ServiceHandlers = IdentityHandlers | ControllerHandlers | NodeHandlers;

/** What the pipeline needs. */
export interface PipelineContext {
  log: Logger;
  locks: VolumeLocks;
  /**
   * Taken after `locks` by services whose volumes have files on this host
   * (the node), so the `attach`/`detach` verbs cannot race the agent.
   */
  fileLocks?: VolumeFileLocks;
  /** Told of every finished call (metrics). */
  observe?: (call: { method: string; code: Code; seconds: number }) => void;
}

/** RPCs that take no volume lock (read-only or node-wide). */
const UNLOCKED: ReadonlySet<string> = new Set([
  "GetPluginInfo",
  "GetPluginCapabilities",
  "Probe",
  "ControllerGetCapabilities",
  "NodeGetCapabilities",
  "NodeGetInfo",
  "ValidateVolumeCapabilities",
  "NodeGetVolumeStats",
  "ListVolumes",
  "GetCapacity",
]);

/** The volume a request is about: `volume_id`, or `name` for CreateVolume. */
export function volumeKeyOf(method: string, req: object): string | undefined {
  const key = method === "CreateVolume"
    ? ("name" in req ? req.name : undefined)
    : ("volume_id" in req ? req.volume_id : undefined);
  return typeof key === "string" && key !== "" ? key : undefined;
}

/**
 * Run one call through the pipeline and resolve with the response, or reject
 * with a {@linkcode CsiError} (never anything else).
 */
export async function runCall<Req extends object, Res>(
  ctx: PipelineContext,
  call: { method: string; handler: Handler<Req, Res>; req: Req },
): Promise<Res> {
  const started = performance.now();
  const volumeId = volumeKeyOf(call.method, call.req);
  let release: (() => void) | undefined;
  let releaseFile: (() => Promise<void>) | undefined;
  try {
    if (volumeId !== undefined && !UNLOCKED.has(call.method)) {
      // Synchronous, before the first await: two calls cannot both get past here.
      release = ctx.locks.acquire(volumeId, call.method);
      releaseFile = await acquireFileLock(ctx, volumeId, call.method);
    }
    if (ctx.log.enabled("debug")) {
      ctx.log.log("debug", "rpc request", { method: call.method, request: redact(call.req) });
    }
    const res = await call.handler(call.req);
    logCall(ctx.log, { method: call.method, volumeId, started, code: Code.OK });
    ctx.observe?.({ method: call.method, code: Code.OK, seconds: elapsedSeconds(started) });
    return res;
  } catch (e) {
    const err = toCsiError(e);
    const secrets = [...secretValuesOf(call.req), ...knownSecretValues()];
    const safe = new CsiError(err.code, scrubValues(err.message, secrets));
    logCall(ctx.log, {
      method: call.method,
      volumeId,
      started,
      code: safe.code,
      error: safe.message,
      // ZeroFS's own words stay on the node: never in the reply (kubelet makes Events of it).
      ...(e instanceof ZeroFsNotReadyError && e.logTail
        ? { zerofsLogTail: scrubValues(e.logTail, secrets) }
        : {}),
    });
    ctx.observe?.({ method: call.method, code: safe.code, seconds: elapsedSeconds(started) });
    throw safe;
  } finally {
    // An unlock that fails must not turn the call's answer into a non-CSI error;
    // the kernel drops the flock when this process exits anyway.
    await releaseFile?.().catch((e) =>
      ctx.log.log("warn", "volume lock release failed", { volume_id: volumeId, error: `${e}` })
    );
    release?.();
  }
}

async function acquireFileLock(
  ctx: PipelineContext,
  volumeId: string,
  method: string,
): Promise<(() => Promise<void>) | undefined> {
  try {
    return await ctx.fileLocks?.acquire(volumeId, method);
  } catch (e) {
    if (!(e instanceof VolumeBusyError)) throw e;
    throw aborted(`${e.message}; retry later`);
  }
}

function elapsedSeconds(started: number): number {
  return (performance.now() - started) / 1000;
}

function logCall(
  log: Logger,
  o: {
    method: string;
    volumeId?: string;
    started: number;
    code: Code;
    error?: string;
    zerofsLogTail?: string;
  },
): void {
  const level = o.code === Code.OK ? "info" : o.code === Code.INTERNAL ? "error" : "warn";
  log.log(level, "rpc", {
    method: o.method,
    ...(o.volumeId !== undefined ? { volume_id: o.volumeId } : {}),
    duration_ms: Math.round((performance.now() - o.started) * 1000) / 1000,
    grpc_code: codeName(o.code),
    ...(o.error !== undefined ? { error: o.error } : {}),
    ...(o.zerofsLogTail !== undefined ? { zerofs_log_tail: o.zerofsLogTail } : {}),
  });
}

/**
 * The handler registered under `method`, its request type erased. grpc-js
 * dispatches by RPC name and decodes with that RPC's request type, so the
 * handler found under a name always receives its own request type.
 */
export function handlerOf(handlers: ServiceHandlers, method: string): Handler | undefined {
  return (handlers as Readonly<Record<string, Handler | undefined>>)[method];
}

/**
 * Wrap a service's handlers as grpc-js unary handlers. Every method of
 * `methodNames` is served: one without a handler answers UNIMPLEMENTED.
 */
export function wrapService(
  ctx: PipelineContext,
  methodNames: readonly string[],
  handlers: ServiceHandlers,
): grpc.UntypedServiceImplementation {
  const impl: grpc.UntypedServiceImplementation = {};
  for (const method of methodNames) {
    const handler: Handler = handlerOf(handlers, method) ?? (() => {
      throw new CsiError(Code.UNIMPLEMENTED, `${method} is not implemented by this driver`);
    });
    impl[method] = (
      call: grpc.ServerUnaryCall<CsiRequest, CsiResponse>,
      callback: grpc.sendUnaryData<CsiResponse>,
    ) => {
      runCall(ctx, { method, handler, req: call.request }).then(
        (res) => callback(null, res),
        (err: CsiError) => callback({ code: err.code, details: err.message }),
      );
    };
  }
  return impl;
}
