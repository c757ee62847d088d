// Generated from csi/csi.proto by `deno task gen:csi-types` (csi/messages/generate.ts); do not edit.
// deno-lint-ignore-file
// Original file: csi/csi.proto

export interface DeleteSnapshotRequest {
  "snapshot_id"?: string;
  "secrets"?: { [key: string]: string };
}

export interface DeleteSnapshotRequest__Output {
  "snapshot_id": string;
  "secrets": { [key: string]: string };
}
