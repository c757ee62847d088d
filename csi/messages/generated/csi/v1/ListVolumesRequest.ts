// Generated from csi/csi.proto by `deno task gen:csi-types` (csi/messages/generate.ts); do not edit.
// deno-lint-ignore-file
// Original file: csi/csi.proto

export interface ListVolumesRequest {
  "max_entries"?: number;
  "starting_token"?: string;
}

export interface ListVolumesRequest__Output {
  "max_entries": number;
  "starting_token": string;
}
