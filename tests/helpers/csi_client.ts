/**
 * Promise-based CSI client over a unix socket, for tests and benchmarks.
 *
 * @example
 * ```ts
 * const client = createCsiClient("/run/zerofs-csi/test-x/csi.sock");
 * const res = await client.controller.CreateVolume({ name: "pvc-1", volume_capabilities: [...] });
 * client.close();
 * ```
 *
 * @module
 */

import * as grpc from "@grpc/grpc-js";
import { csiServices } from "../../csi/mod.ts";

/** A failed call: carries the gRPC status code. */
export class CsiCallError extends Error {
  override readonly name = "CsiCallError";
  constructor(readonly code: grpc.status, readonly details: string, readonly method: string) {
    super(`${method}: ${grpc.status[code]} (${code}): ${details}`);
  }
}

// deno-lint-ignore no-explicit-any
type Msg = Record<string, any>;
/** One service's RPCs as promise-returning functions. */
export type ServiceClient = Record<string, (req?: Msg, timeoutMs?: number) => Promise<Msg>>;

/** Clients for the three services sharing one channel. */
export interface CsiClient {
  identity: ServiceClient;
  controller: ServiceClient;
  node: ServiceClient;
  close(): void;
}

function promisify(client: grpc.Client, def: grpc.ServiceDefinition): ServiceClient {
  const out: ServiceClient = {};
  for (const method of Object.keys(def)) {
    const m = def[method];
    out[method] = (req = {}, timeoutMs = 30_000) =>
      new Promise((resolve, reject) => {
        client.makeUnaryRequest(
          m.path,
          m.requestSerialize,
          m.responseDeserialize,
          req,
          new grpc.Metadata(),
          { deadline: Date.now() + timeoutMs },
          (err: grpc.ServiceError | null, res?: Msg) => {
            if (err) reject(new CsiCallError(err.code, err.details, method));
            else resolve(res as Msg);
          },
        );
      });
  }
  return out;
}

/** Options for {@linkcode createCsiClient}. */
export interface CsiClientOptions {
  /**
   * Open a connection of its own. By default grpc-js shares one connection
   * among all clients of a target, and closing one client closes nothing.
   */
  ownConnection?: boolean;
}

/** Connect to a CSI socket (`/abs/path` or `unix:///abs/path`). */
export function createCsiClient(socket: string, opts: CsiClientOptions = {}): CsiClient {
  const target = socket.startsWith("unix://") ? socket : `unix://${socket}`;
  const channelOptions = opts.ownConnection ? { "grpc.use_local_subchannel_pool": 1 } : {};
  const client = new grpc.Client(target, grpc.credentials.createInsecure(), channelOptions);
  const defs = csiServices();
  return {
    identity: promisify(client, defs.Identity),
    controller: promisify(client, defs.Controller),
    node: promisify(client, defs.Node),
    close: () => client.close(),
  };
}
