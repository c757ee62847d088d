// Generated from csi/csi.proto by `deno task gen:csi-types` (csi/messages/generate.ts); do not edit.
// deno-lint-ignore-file
// Original file: csi/csi.proto

export interface NodeUnstageVolumeRequest {
  "volume_id"?: string;
  "staging_target_path"?: string;
}

export interface NodeUnstageVolumeRequest__Output {
  "volume_id": string;
  "staging_target_path": string;
}
