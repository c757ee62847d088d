/**
 * CreateVolume parameters: validated against the ZeroFS settings keys, and
 * turned into the volume context the node service reads.
 *
 * @module
 */

import {
  PIN_CONTEXT_PREFIX,
  pinToContext,
  resolveSettings,
  validateVolumeParameters,
  type VolumePin,
  type VolumeSettings,
} from "../zerofs/mod.ts";
import { invalidArgument } from "./errors.ts";
import type { Capability } from "./validate.ts";

/** Filesystem when neither parameters nor capabilities name one. */
export const DEFAULT_FS_TYPE = "ext4";

/** Volume-context keys the controller adds. */
export const CONTEXT_CAPACITY_BYTES = "capacityBytes";
export const CONTEXT_FS_TYPE = "fsType";
/** The volume-context key the original driver's CreateVolume added (required bytes, "0" for none). */
export const CONTEXT_LEGACY_CAPACITY_BYTES = "capacity_bytes";

/**
 * Prefixes Kubernetes reserves for keys it adds to a volume context: the
 * external-provisioner's `storage.kubernetes.io/csiProvisionerIdentity` on
 * every PV it creates, and `csi.storage.k8s.io/*` (provisioner metadata,
 * kubelet's pod information).
 */
const KUBERNETES_CONTEXT_PREFIXES = ["storage.kubernetes.io/", "csi.storage.k8s.io/"];

const ADDED_CONTEXT_KEYS: ReadonlySet<string> = new Set([
  CONTEXT_CAPACITY_BYTES,
  CONTEXT_FS_TYPE,
  CONTEXT_LEGACY_CAPACITY_BYTES,
]);

/**
 * Validate `params` (unknown keys, bad values → INVALID_ARGUMENT via
 * SettingsError) and pick the filesystem: `filesystem`,
 * `csi.storage.k8s.io/fstype` and every mount capability's fs_type must agree.
 */
export function resolveFsType(params: Record<string, string>, caps: Capability[]): string {
  validateVolumeParameters(params);
  const sources: Array<[string, string]> = [];
  if (params.filesystem) sources.push(["parameter filesystem", params.filesystem]);
  const k8s = params["csi.storage.k8s.io/fstype"];
  if (k8s) sources.push(["parameter csi.storage.k8s.io/fstype", k8s]);
  caps.forEach((c, i) => {
    if (c.fsType) sources.push([`volume_capabilities[${i}].mount.fs_type`, c.fsType]);
  });
  const [first] = sources;
  for (const [where, value] of sources) {
    if (value !== first[1]) {
      throw invalidArgument(
        `${where} is "${value}" but ${first[0]} is "${first[1]}"; give one filesystem`,
      );
    }
  }
  return first?.[1] ?? DEFAULT_FS_TYPE;
}

/**
 * The volume context: every parameter plus capacity, filesystem and the
 * volume's pin (`zerofs.csi/<key>`, see `zerofs/volume_pin.ts`), which the
 * node uses over whatever the ConfigMap says at stage time.
 */
export function volumeContext(
  params: Record<string, string>,
  o: { capacityBytes: number; fsType: string; pin: VolumePin },
): Record<string, string> {
  return {
    ...params,
    [CONTEXT_CAPACITY_BYTES]: String(o.capacityBytes),
    [CONTEXT_FS_TYPE]: o.fsType,
    ...pinToContext(o.pin),
  };
}

/**
 * The StorageClass parameters in a volume context: without the keys the
 * controller (capacity, filesystem), the original driver (`capacity_bytes`)
 * and Kubernetes add, and without the pin (`zerofs.csi/*`, read by
 * `pinFromContext`). Whatever is left must be a parameter the settings know.
 */
export function parametersOfContext(volumeContext: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(volumeContext).filter(([key]) =>
      !ADDED_CONTEXT_KEYS.has(key) && !key.startsWith(PIN_CONTEXT_PREFIX) &&
      !KUBERNETES_CONTEXT_PREFIXES.some((prefix) => key.startsWith(prefix))
    ),
  );
}

/**
 * A node's settings for a volume: the parameters in its volume context over
 * `configMap` (the data of the ConfigMap the context names, read by the
 * caller) over `defaults`. Unknown keys are refused, named as volume_context
 * or ConfigMap keys.
 */
export function resolveContextSettings(
  volumeContext: Record<string, string>,
  configMap: Record<string, string> | undefined,
  defaults?: Partial<VolumeSettings>,
): VolumeSettings {
  return resolveSettings({
    parameters: parametersOfContext(volumeContext),
    parametersFrom: "volume_context",
    configMap,
    configMapName: volumeContext.configMapName,
    defaults,
  });
}
