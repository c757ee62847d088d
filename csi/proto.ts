/**
 * The CSI service definitions, loaded from `csi.proto` embedded in the
 * module graph (so the binary needs no read permission on its own sources).
 *
 * @module
 */

import { Buffer } from "node:buffer";
import fs from "node:fs";
import type * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import protoText from "./csi.proto" with { type: "text" };
import type { ControllerDefinition, IdentityDefinition, NodeDefinition } from "./messages/mod.ts";

/** Options every CSI (de)serializer uses: snake_case fields as in the spec. */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

/** The three CSI services as grpc-js definitions, typed by the generated messages. */
export interface CsiServices {
  Identity: IdentityDefinition;
  Controller: ControllerDefinition;
  Node: NodeDefinition;
}

const VIRTUAL_PATH = "/zerofs-csi-embedded/csi/csi.proto";
let cached: CsiServices | undefined;

/** Load (once) and return the CSI service definitions. */
export function csiServices(): CsiServices {
  if (cached) return cached;
  const def = loadEmbedded();
  const service = (name: string) => def[`csi.v1.${name}`] as grpc.ServiceDefinition;
  // The generated definitions describe what this loader builds from the same
  // proto with the same options (csi/messages/generate_test.ts keeps them so).
  cached = {
    Identity: service("Identity") as IdentityDefinition,
    Controller: service("Controller") as ControllerDefinition,
    Node: service("Node") as NodeDefinition,
  };
  return cached;
}

/** RPC names of a service, e.g. `["CreateVolume", …]`. */
export function methodNames(def: grpc.ServiceDefinition): string[] {
  return Object.keys(def);
}

// proto-loader only reads files through fs.readFileSync (it resolves the
// google/protobuf imports itself). Answering that one virtual path from the
// embedded text, for the duration of one synchronous call, avoids granting
// read access to the source tree or writing a temp copy.
function loadEmbedded(): protoLoader.PackageDefinition {
  const original = fs.readFileSync;
  const patched = function (this: unknown, path: unknown, ...rest: unknown[]) {
    if (path === VIRTUAL_PATH) return Buffer.from(protoText, "utf8");
    return (original as (...a: unknown[]) => unknown).call(fs, path, ...rest);
  };
  (fs as { readFileSync: unknown }).readFileSync = patched;
  try {
    return protoLoader.loadSync(VIRTUAL_PATH, PROTO_LOADER_OPTIONS);
  } finally {
    (fs as { readFileSync: unknown }).readFileSync = original;
  }
}
