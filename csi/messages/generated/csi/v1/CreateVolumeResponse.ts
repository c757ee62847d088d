// Generated from csi/csi.proto by `deno task gen:csi-types` (csi/messages/generate.ts); do not edit.
// deno-lint-ignore-file
// Original file: csi/csi.proto

import type {
  Volume as _csi_v1_Volume,
  Volume__Output as _csi_v1_Volume__Output,
} from "../../csi/v1/Volume.ts";

export interface CreateVolumeResponse {
  "volume"?: _csi_v1_Volume | null;
}

export interface CreateVolumeResponse__Output {
  "volume": _csi_v1_Volume__Output | null;
}
