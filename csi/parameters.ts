/**
 * CreateVolume parameters: validated against the ZeroFS settings keys, and
 * turned into the volume context the node service reads.
 *
 * @module
 */

import { pinToContext, validateVolumeParameters, type VolumePin } from "../zerofs/mod.ts";
import { invalidArgument } from "./errors.ts";
import type { Capability } from "./validate.ts";

/** Filesystem when neither parameters nor capabilities name one. */
export const DEFAULT_FS_TYPE = "ext4";

/** Volume-context keys the controller adds. */
export const CONTEXT_CAPACITY_BYTES = "capacityBytes";
export const CONTEXT_FS_TYPE = "fsType";

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
