/**
 * Everything about ZeroFS: settings and `config.toml`, the runners that keep
 * one instance per volume, readiness, the userspace 9P client with the two
 * files the driver keeps in a volume, and object-store cleanup.
 *
 * Other folders import only from here.
 *
 * @module
 */

export type { InstanceSpec, InstanceStatus, ZeroFsRunner } from "./runner.ts";
export { SettingsError, ZeroFsNotReadyError } from "./types.ts";
export {
  checkSocketPath,
  MAX_SOCKET_PATH_BYTES,
  nodeLockPath,
  POD_STATE_DIR,
  type StateDirFiles,
  stateDirFiles,
  volumeDirName,
  volumeDirsRoot,
  type VolumePaths,
  volumePaths,
} from "./paths.ts";
export { readFileIfExists, removeFileIfExists, writeFileAtomic } from "./atomic_file.ts";
export {
  CorruptRecordError,
  defineRecord,
  readRecordFile,
  type RecordDefinition,
  RecordFieldError,
  RecordFields,
  type RecordFormat,
  writeRecordFile,
} from "./record_file.ts";
export * from "./settings.ts";
export * from "./secrets.ts";
export {
  applyPin,
  describeDisagreement,
  parsePin,
  PIN_CONTEXT_PREFIX,
  pinContextKey,
  type PinDisagreement,
  pinFromContext,
  pinFromSettings,
  PINNED_KEYS,
  type PinnedKey,
  pinToContext,
  type VolumePin,
} from "./volume_pin.ts";
export { type RenderConfigOptions, renderConfigToml } from "./config_toml.ts";
export {
  compareZeroFsVersions,
  detectBinaryVersion,
  formatZeroFsVersion,
  imageVersion,
  incompatibilityReason,
  parseZeroFsVersion,
  storageFamily,
  type ZeroFsFeatures,
  zerofsFeatures,
  type ZeroFsVersion,
} from "./version.ts";
export { NinepClient, ninepHandshake } from "./ninep/mod.ts";
export { ensureDeviceFile, readDeviceFileSize } from "./device_file.ts";
export {
  readVolumeRecord,
  type VolumeFsType,
  type VolumeRecord,
  VolumeRecordError,
  writeVolumeRecord,
  type ZeroFsPin,
} from "./volume_record.ts";
export { listNbdExports, probeNbdExport } from "./nbd_probe.ts";
export { checkReady, waitUntilReady } from "./readiness.ts";
export { probeWritable, WRITER_PROBE_PATH, type WriterProbe } from "./writer_probe.ts";
export { ProcessRunner, type ProcessRunnerOptions, readLogTail } from "./process_runner.ts";
export { zerofsConfigOf, zerofsRunArgs } from "./run_argv.ts";
export * from "./objectstore/mod.ts";
export { readConfigMapData, readSecretData } from "./kube_objects.ts";
export {
  cacheSizeLimit,
  describePod,
  POD_ANNOTATION_CONFIG_HASH,
  POD_ANNOTATION_POD_HASH,
  POD_ANNOTATION_VOLUME_ID,
  POD_CACHE_DIR,
  POD_CONTAINER,
  POD_LABEL_NAME,
  POD_LABEL_NODE,
  POD_LABEL_VOLUME_DIR,
  PodRunner,
  type PodRunnerOptions,
  secretEnvVars,
  zerofsPodName,
} from "./pod_runner.ts";
