// Generated from csi/csi.proto by `deno task gen:csi-types` (csi/messages/generate.ts); do not edit.
// deno-lint-ignore-file
// Original file: csi/csi.proto

export interface ControllerUnpublishVolumeRequest {
  "volume_id"?: string;
  "node_id"?: string;
  "secrets"?: { [key: string]: string };
}

export interface ControllerUnpublishVolumeRequest__Output {
  "volume_id": string;
  "node_id": string;
  "secrets": { [key: string]: string };
}
