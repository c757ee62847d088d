// Generated from csi/csi.proto by `deno task gen:csi-types` (csi/messages/generate.ts); do not edit.
// deno-lint-ignore-file
// Original file: null

export interface StringValue {
  "value"?: string;
}

export interface StringValue__Output {
  "value": string;
}
