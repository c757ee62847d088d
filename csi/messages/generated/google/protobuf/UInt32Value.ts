// Generated from csi/csi.proto by `deno task gen:csi-types` (csi/messages/generate.ts); do not edit.
// deno-lint-ignore-file
// Original file: null

export interface UInt32Value {
  "value"?: number;
}

export interface UInt32Value__Output {
  "value": number;
}
