// Generated from csi/csi.proto by `deno task gen:csi-types` (csi/messages/generate.ts); do not edit.
// deno-lint-ignore-file
// Original file: csi/csi.proto

export interface CreateSnapshotRequest {
  "source_volume_id"?: string;
  "name"?: string;
  "secrets"?: { [key: string]: string };
  "parameters"?: { [key: string]: string };
}

export interface CreateSnapshotRequest__Output {
  "source_volume_id": string;
  "name": string;
  "secrets": { [key: string]: string };
  "parameters": { [key: string]: string };
}
