// Generated from csi/csi.proto by `deno task gen:csi-types` (csi/messages/generate.ts); do not edit.
// deno-lint-ignore-file
// Original file: csi/csi.proto

import type { Long } from "@grpc/proto-loader";

export interface NodeExpandVolumeResponse {
  "capacity_bytes"?: number | string | Long;
}

export interface NodeExpandVolumeResponse__Output {
  "capacity_bytes": number;
}
