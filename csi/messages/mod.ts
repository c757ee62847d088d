/**
 * The CSI messages as TypeScript types, generated from `csi/csi.proto` by
 * @grpc/proto-loader's type generator (`deno task gen:csi-types`, output in
 * `generated/`). Handlers receive a request as `<Name>__Output` (decoded:
 * every field present, messages null when unset, enums as names, int64 as
 * numbers) and answer with `<Name>` (fields optional).
 *
 * @module
 */

export type {
  AsyncHandlers,
  ControllerHandlers,
  CsiRequest,
  CsiResponse,
  IdentityHandlers,
  NodeHandlers,
  RequestOf,
  ResponseOf,
} from "./services.ts";
export type { ControllerDefinition } from "./generated/csi/v1/Controller.ts";
export type { IdentityDefinition } from "./generated/csi/v1/Identity.ts";
export type { NodeDefinition } from "./generated/csi/v1/Node.ts";
export type { CapacityRange, CapacityRange__Output } from "./generated/csi/v1/CapacityRange.ts";
export type {
  VolumeCapability,
  VolumeCapability__Output,
} from "./generated/csi/v1/VolumeCapability.ts";
export type { CreateVolumeRequest__Output } from "./generated/csi/v1/CreateVolumeRequest.ts";
export type { CreateVolumeResponse } from "./generated/csi/v1/CreateVolumeResponse.ts";
export type { DeleteVolumeRequest__Output } from "./generated/csi/v1/DeleteVolumeRequest.ts";
export type { DeleteVolumeResponse } from "./generated/csi/v1/DeleteVolumeResponse.ts";
export type {
  ControllerPublishVolumeRequest__Output,
} from "./generated/csi/v1/ControllerPublishVolumeRequest.ts";
export type {
  ControllerPublishVolumeResponse,
} from "./generated/csi/v1/ControllerPublishVolumeResponse.ts";
export type {
  ControllerUnpublishVolumeRequest__Output,
} from "./generated/csi/v1/ControllerUnpublishVolumeRequest.ts";
export type {
  ControllerUnpublishVolumeResponse,
} from "./generated/csi/v1/ControllerUnpublishVolumeResponse.ts";
export type {
  ValidateVolumeCapabilitiesRequest__Output,
} from "./generated/csi/v1/ValidateVolumeCapabilitiesRequest.ts";
export type {
  ValidateVolumeCapabilitiesResponse,
} from "./generated/csi/v1/ValidateVolumeCapabilitiesResponse.ts";
export type {
  ControllerExpandVolumeRequest__Output,
} from "./generated/csi/v1/ControllerExpandVolumeRequest.ts";
export type {
  ControllerExpandVolumeResponse,
} from "./generated/csi/v1/ControllerExpandVolumeResponse.ts";
export type {
  NodeStageVolumeRequest,
  NodeStageVolumeRequest__Output,
} from "./generated/csi/v1/NodeStageVolumeRequest.ts";
export type { NodeStageVolumeResponse } from "./generated/csi/v1/NodeStageVolumeResponse.ts";
export type {
  NodeUnstageVolumeRequest__Output,
} from "./generated/csi/v1/NodeUnstageVolumeRequest.ts";
export type { NodeUnstageVolumeResponse } from "./generated/csi/v1/NodeUnstageVolumeResponse.ts";
export type {
  NodePublishVolumeRequest__Output,
} from "./generated/csi/v1/NodePublishVolumeRequest.ts";
export type { NodePublishVolumeResponse } from "./generated/csi/v1/NodePublishVolumeResponse.ts";
export type {
  NodeUnpublishVolumeRequest__Output,
} from "./generated/csi/v1/NodeUnpublishVolumeRequest.ts";
export type {
  NodeUnpublishVolumeResponse,
} from "./generated/csi/v1/NodeUnpublishVolumeResponse.ts";
export type {
  NodeGetVolumeStatsRequest__Output,
} from "./generated/csi/v1/NodeGetVolumeStatsRequest.ts";
export type { NodeGetVolumeStatsResponse } from "./generated/csi/v1/NodeGetVolumeStatsResponse.ts";
export type { VolumeUsage } from "./generated/csi/v1/VolumeUsage.ts";
export type {
  NodeExpandVolumeRequest__Output,
} from "./generated/csi/v1/NodeExpandVolumeRequest.ts";
export type { NodeExpandVolumeResponse } from "./generated/csi/v1/NodeExpandVolumeResponse.ts";
