// Generated from csi/csi.proto by `deno task gen:csi-types` (csi/messages/generate.ts); do not edit.
// deno-lint-ignore-file
// Original file: null

export interface Int32Value {
  "value"?: number;
}

export interface Int32Value__Output {
  "value": number;
}
