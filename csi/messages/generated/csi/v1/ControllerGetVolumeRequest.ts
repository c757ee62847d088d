// Generated from csi/csi.proto by `deno task gen:csi-types` (csi/messages/generate.ts); do not edit.
// deno-lint-ignore-file
// Original file: csi/csi.proto

export interface ControllerGetVolumeRequest {
  "volume_id"?: string;
}

export interface ControllerGetVolumeRequest__Output {
  "volume_id": string;
}
