// Generated from csi/csi.proto by `deno task gen:csi-types` (csi/messages/generate.ts); do not edit.
// deno-lint-ignore-file
// Original file: csi/csi.proto

export interface GetPluginInfoResponse {
  "name"?: string;
  "vendor_version"?: string;
  "manifest"?: { [key: string]: string };
}

export interface GetPluginInfoResponse__Output {
  "name": string;
  "vendor_version": string;
  "manifest": { [key: string]: string };
}
