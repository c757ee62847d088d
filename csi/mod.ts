/**
 * The CSI layer: proto, gRPC server, request pipeline, validation, the
 * Identity, Controller and Node services, failpoints and `doctor`.
 *
 * Code outside this folder (the tests) imports from here. `main.ts` is the
 * exception: it loads each CLI verb's module on its own, so a verb loads only
 * what it runs.
 *
 * @module
 */

export {
  aborted,
  alreadyExists,
  Code,
  codeName,
  CsiError,
  deadlineExceeded,
  failedPrecondition,
  internal,
  invalidArgument,
  notFound,
  outOfRange,
  resourceExhausted,
  toCsiError,
  unavailable,
  unimplemented,
} from "./errors.ts";
export {
  createLogger,
  type LogFormat,
  type Logger,
  type LogLevel,
  parseLogFormat,
  parseLogLevel,
} from "./log.ts";
export { type Release, VolumeLocks } from "./locks.ts";
export { redact, REDACTED } from "./redact.ts";
export {
  type ControllerHandlers,
  type CsiRequest,
  type CsiResponse,
  type Handler,
  handlerOf,
  type IdentityHandlers,
  type NodeHandlers,
  type PipelineContext,
  runCall,
  type ServiceHandlers,
  wrapService,
} from "./pipeline.ts";
export {
  type Capability,
  type CapabilityOptions,
  DEFAULT_FS_TYPES,
  parseAbsolutePath,
  parseCapabilities,
  parseCapability,
  type ParsedCapability,
  parseMountFlag,
  parseRequiredString,
  parseVolumeId,
  READ_ONLY_ACCESS_MODES,
  SUPPORTED_ACCESS_MODES,
} from "./validate.ts";
export {
  BLOCK_BYTES,
  capacityFits,
  DEFAULT_CAPACITY_BYTES,
  resolveCapacity,
  roundUpToBlock,
} from "./capacity.ts";
export { CONTEXT_CAPACITY_BYTES, CONTEXT_FS_TYPE } from "./parameters.ts";
export { createIdentityService, type IdentityOptions } from "./identity.ts";
export {
  CONTROLLER_CAPABILITIES,
  type ControllerDeps,
  createControllerService,
} from "./controller.ts";
export {
  type ConfigMapSource,
  ControllerSettings,
  type ControllerSettingsOptions,
  FileConfigMapSource,
} from "./controller_settings.ts";
export {
  type ControllerVolumeEntry,
  FileVolumeRegistry,
  type Publication,
  type VolumeRegistry,
} from "./registry.ts";
export { MAX_VOLUME_NAME_BYTES, parseVolumeName, volumeIdForName } from "./volume_name.ts";
export {
  ANY_NODE,
  FileKnownNodes,
  type KnownNodes,
  KubeKnownNodes,
  type NodeRegistration,
  registerNode,
} from "./known_nodes.ts";
export { MirroredVolumeRegistry, ObjectStoreVolumeRegistry, RECORDS_DIR } from "./volume_store.ts";
export { type CsiServices, csiServices, PROTO_LOADER_OPTIONS } from "./proto.ts";
export {
  type CsiServer,
  type CsiServiceHandlers,
  DEFAULT_SHUTDOWN_GRACE_MS,
  parseEndpoint,
  startCsiServer,
} from "./server.ts";
export { CSI_SPEC_VERSION, DRIVER_NAME, DRIVER_VERSION } from "./version.ts";
export {
  buildInstanceSpec,
  createNodeContext,
  type NodeContext,
  nodeHandlers,
  type NodeOptions,
  type NodeServiceHandlers,
  type NodeVolumeState,
} from "./node/mod.ts";
export {
  FAILPOINT_EXIT_CODE,
  FAILPOINT_NAMES,
  type FailpointName,
  FAILPOINTS_ENV,
  parseFailpoints,
} from "./failpoints.ts";
export {
  type CheckSeverity,
  checkStatus,
  type DoctorCheck,
  type DoctorOptions,
  type DoctorReport,
  formatDoctorReport,
  HOST_TOOLS,
  type HostTool,
  runDoctor,
} from "./cli/doctor.ts";
export { DEFAULT_STATE_DIR } from "./cli/flags.ts";
