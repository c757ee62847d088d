/**
 * gRPC status errors for CSI handlers, and the one mapping from any thrown
 * value (domain errors included) to a gRPC status.
 *
 * @module
 */

import { status } from "@grpc/grpc-js";
import { NoFreeDeviceError, ToolError } from "../blockdev/mod.ts";
import { ObjectStoreError, SettingsError, ZeroFsNotReadyError } from "../zerofs/mod.ts";

/** gRPC status codes (re-exported so handlers need not import grpc-js). */
export const Code = status;
/** A gRPC status code. */
export type Code = status;

/** An error that carries the gRPC status code the client receives. */
export class CsiError extends Error {
  override readonly name = "CsiError";
  constructor(readonly code: Code, message: string) {
    super(message);
  }
}

/** Bad input (3). */
export const invalidArgument = (msg: string) => new CsiError(Code.INVALID_ARGUMENT, msg);
/** Unknown volume or path (5). */
export const notFound = (msg: string) => new CsiError(Code.NOT_FOUND, msg);
/** Exists with incompatible properties (6). */
export const alreadyExists = (msg: string) => new CsiError(Code.ALREADY_EXISTS, msg);
/** Wrong state, missing ConfigMap/Secret (9). */
export const failedPrecondition = (msg: string) => new CsiError(Code.FAILED_PRECONDITION, msg);
/** Capacity cannot be met (11). */
export const outOfRange = (msg: string) => new CsiError(Code.OUT_OF_RANGE, msg);
/** No device left (8). */
export const resourceExhausted = (msg: string) => new CsiError(Code.RESOURCE_EXHAUSTED, msg);
/** Same volume busy (10). */
export const aborted = (msg: string) => new CsiError(Code.ABORTED, msg);
/** Something failed inside the driver (13). */
export const internal = (msg: string) => new CsiError(Code.INTERNAL, msg);
/** RPC not implemented (12). */
export const unimplemented = (msg: string) => new CsiError(Code.UNIMPLEMENTED, msg);
/** A dependency (the object store) failed in a way worth retrying (14). */
export const unavailable = (msg: string) => new CsiError(Code.UNAVAILABLE, msg);
/** Timed out waiting for something (4). */
export const deadlineExceeded = (msg: string) => new CsiError(Code.DEADLINE_EXCEEDED, msg);

/**
 * Map anything a handler threw to a {@linkcode CsiError}: CsiError as is,
 * domain errors to their status, everything else INTERNAL with its message.
 */
export function toCsiError(e: unknown): CsiError {
  if (e instanceof CsiError) return e;
  if (e instanceof ToolError) return internal(e.message);
  if (e instanceof NoFreeDeviceError) return resourceExhausted(e.message);
  if (e instanceof ZeroFsNotReadyError) return deadlineExceeded(e.message);
  if (e instanceof ObjectStoreError) return objectStoreStatus(e);
  if (e instanceof SettingsError) {
    return e.kind === "precondition" ? failedPrecondition(e.message) : invalidArgument(e.message);
  }
  if (e instanceof Error) return internal(e.message || e.name);
  return internal(String(e));
}

/**
 * Object-store failures that are not configuration (those are SettingsError):
 * a writer still running → FAILED_PRECONDITION, an abort → ABORTED, a key
 * outside the prefix → INTERNAL, anything else (5xx, network, throttling
 * after retries) → UNAVAILABLE, which the sidecars retry.
 */
function objectStoreStatus(e: ObjectStoreError): CsiError {
  switch (e.code) {
    case "StillWriting":
      return failedPrecondition(e.message);
    case "AbortError":
      return aborted(e.message);
    case "UnexpectedKey":
      return internal(e.message);
    default:
      return unavailable(e.message);
  }
}

/** The symbolic name of a code, e.g. `"ABORTED"`. */
export function codeName(code: Code): string {
  return Code[code] ?? String(code);
}
