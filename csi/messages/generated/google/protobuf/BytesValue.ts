// Generated from csi/csi.proto by `deno task gen:csi-types` (csi/messages/generate.ts); do not edit.
// deno-lint-ignore-file
// Original file: null

export interface BytesValue {
  "value"?: Buffer | Uint8Array | string;
}

export interface BytesValue__Output {
  "value": Buffer;
}
