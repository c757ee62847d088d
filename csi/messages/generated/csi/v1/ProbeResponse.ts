// Generated from csi/csi.proto by `deno task gen:csi-types` (csi/messages/generate.ts); do not edit.
// deno-lint-ignore-file
// Original file: csi/csi.proto

import type {
  BoolValue as _google_protobuf_BoolValue,
  BoolValue__Output as _google_protobuf_BoolValue__Output,
} from "../../google/protobuf/BoolValue.ts";

export interface ProbeResponse {
  "ready"?: _google_protobuf_BoolValue | null;
}

export interface ProbeResponse__Output {
  "ready": _google_protobuf_BoolValue__Output | null;
}
