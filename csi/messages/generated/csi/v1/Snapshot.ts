// Generated from csi/csi.proto by `deno task gen:csi-types` (csi/messages/generate.ts); do not edit.
// deno-lint-ignore-file
// Original file: csi/csi.proto

import type {
  Timestamp as _google_protobuf_Timestamp,
  Timestamp__Output as _google_protobuf_Timestamp__Output,
} from "../../google/protobuf/Timestamp.ts";
import type { Long } from "@grpc/proto-loader";

export interface Snapshot {
  "size_bytes"?: number | string | Long;
  "snapshot_id"?: string;
  "source_volume_id"?: string;
  "creation_time"?: _google_protobuf_Timestamp | null;
  "ready_to_use"?: boolean;
}

export interface Snapshot__Output {
  "size_bytes": number;
  "snapshot_id": string;
  "source_volume_id": string;
  "creation_time": _google_protobuf_Timestamp__Output | null;
  "ready_to_use": boolean;
}
