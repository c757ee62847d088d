// Generated from csi/csi.proto by `deno task gen:csi-types` (csi/messages/generate.ts); do not edit.
// deno-lint-ignore-file
// Original file: csi/csi.proto

import type {
  PluginCapability as _csi_v1_PluginCapability,
  PluginCapability__Output as _csi_v1_PluginCapability__Output,
} from "../../csi/v1/PluginCapability.ts";

export interface GetPluginCapabilitiesResponse {
  "capabilities"?: (_csi_v1_PluginCapability)[];
}

export interface GetPluginCapabilitiesResponse__Output {
  "capabilities": (_csi_v1_PluginCapability__Output)[];
}
