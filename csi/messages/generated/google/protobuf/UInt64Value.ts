// Generated from csi/csi.proto by `deno task gen:csi-types` (csi/messages/generate.ts); do not edit.
// deno-lint-ignore-file
// Original file: null

import type { Long } from "@grpc/proto-loader";

export interface UInt64Value {
  "value"?: number | string | Long;
}

export interface UInt64Value__Output {
  "value": number;
}
