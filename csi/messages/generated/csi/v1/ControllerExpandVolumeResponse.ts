// Generated from csi/csi.proto by `deno task gen:csi-types` (csi/messages/generate.ts); do not edit.
// deno-lint-ignore-file
// Original file: csi/csi.proto

import type { Long } from "@grpc/proto-loader";

export interface ControllerExpandVolumeResponse {
  "capacity_bytes"?: number | string | Long;
  "node_expansion_required"?: boolean;
}

export interface ControllerExpandVolumeResponse__Output {
  "capacity_bytes": number;
  "node_expansion_required": boolean;
}
