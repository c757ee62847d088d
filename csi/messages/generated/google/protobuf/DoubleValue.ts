// Generated from csi/csi.proto by `deno task gen:csi-types` (csi/messages/generate.ts); do not edit.
// deno-lint-ignore-file
// Original file: null

export interface DoubleValue {
  "value"?: number | string;
}

export interface DoubleValue__Output {
  "value": number;
}
