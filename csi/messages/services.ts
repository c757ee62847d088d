/**
 * The driver's handler shapes, derived from the generated service
 * definitions: which request each RPC receives and which response it
 * answers with come from csi.proto, not from a hand-kept list.
 *
 * @module
 */

import type { MethodDefinition } from "@grpc/proto-loader";
import type { ControllerDefinition } from "./generated/csi/v1/Controller.ts";
import type { IdentityDefinition } from "./generated/csi/v1/Identity.ts";
import type { NodeDefinition } from "./generated/csi/v1/Node.ts";

/** A method's request as proto-loader decodes it (every field present, `defaults: true`). */
export type RequestOf<M> = M extends MethodDefinition<infer _In, infer _Res, infer Req, infer _Out>
  ? Req
  : never;
/** A method's response as a handler may write it (fields optional, longs as numbers or strings). */
export type ResponseOf<M> = M extends MethodDefinition<infer _In, infer Res, infer _Req, infer _Out>
  ? Res
  : never;

/** A service definition without grpc-js's `[name: string]` index: its RPCs only. */
type RpcsOf<D> = { [M in keyof D as string extends M ? never : M]: D[M] };

/**
 * A service's handlers keyed by RPC name: each takes the decoded request and
 * resolves with the response. An RPC without a handler answers UNIMPLEMENTED.
 */
export type AsyncHandlers<D> = {
  [M in keyof RpcsOf<D>]?: (req: RequestOf<D[M]>) => Promise<ResponseOf<D[M]>>;
};

/** Identity handlers. */
export type IdentityHandlers = AsyncHandlers<IdentityDefinition>;
/** Controller handlers. */
export type ControllerHandlers = AsyncHandlers<ControllerDefinition>;
/** Node handlers. */
export type NodeHandlers = AsyncHandlers<NodeDefinition>;

type RequestsOf<D> = { [M in keyof RpcsOf<D>]: RequestOf<D[M]> }[keyof RpcsOf<D>];
type ResponsesOf<D> = { [M in keyof RpcsOf<D>]: ResponseOf<D[M]> }[keyof RpcsOf<D>];

/** Any decoded CSI request of the three services. */
export type CsiRequest =
  | RequestsOf<IdentityDefinition>
  | RequestsOf<ControllerDefinition>
  | RequestsOf<NodeDefinition>;
/** Any CSI response of the three services. */
export type CsiResponse =
  | ResponsesOf<IdentityDefinition>
  | ResponsesOf<ControllerDefinition>
  | ResponsesOf<NodeDefinition>;

export type { ControllerDefinition, IdentityDefinition, NodeDefinition };
