/**
 * A userspace 9P2000.L client over unix sockets: how the driver reaches into
 * a ZeroFS filesystem without a kernel mount (the node may have no 9p module).
 *
 * @module
 */

export {
  DEFAULT_MSIZE_BYTES,
  MAX_MSIZE_BYTES,
  NinepClient,
  type NinepConnectOptions,
  type OpenFile,
  splitPath,
} from "./client.ts";
export {
  Errno,
  errnoName,
  isNotFound,
  NinepConnectionError,
  NinepError,
  NinepTimeoutError,
} from "./errors.ts";
export { type HandshakeOptions, ninepHandshake } from "./handshake.ts";
export { isDirectory, isRegularFile, type NinepAttr, OpenFlags } from "./messages.ts";
export { NinepProtocolError, type Qid } from "./wire.ts";
