// Generated from csi/csi.proto by `deno task gen:csi-types` (csi/messages/generate.ts); do not edit.
// deno-lint-ignore-file
// Original file: csi/csi.proto

export interface NodeGetVolumeStatsRequest {
  "volume_id"?: string;
  "volume_path"?: string;
  "staging_target_path"?: string;
  "secrets"?: { [key: string]: string };
  "volume_context"?: { [key: string]: string };
}

export interface NodeGetVolumeStatsRequest__Output {
  "volume_id": string;
  "volume_path": string;
  "staging_target_path": string;
  "secrets": { [key: string]: string };
  "volume_context": { [key: string]: string };
}
