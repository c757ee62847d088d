/**
 * The CSI Controller service: volumes are records here; their data lives in
 * the object store and is created lazily by the node on first stage.
 *
 * @module
 */

import { capacityFits, resolveCapacity } from "./capacity.ts";
import { alreadyExists, invalidArgument, notFound } from "./errors.ts";
import type { Logger } from "./log.ts";
import { resolveFsType, volumeContext } from "./parameters.ts";
import type { CsiRequest, ServiceHandlers } from "./pipeline.ts";
import type { VolumeEntry, VolumeRegistry } from "./registry.ts";
import {
  type Capability,
  parseCapabilities,
  parseCapability,
  parseRequiredString,
  parseVolumeId,
  READ_ONLY_ACCESS_MODES,
} from "./validate.ts";

/** Removes a deleted volume's data from the object store. */
export interface VolumeDataRemover {
  remove(entry: VolumeEntry): Promise<void>;
}

/** Until object-store cleanup exists: keep the data and say so. */
export function loggingDataRemover(log: Logger): VolumeDataRemover {
  return {
    remove(entry) {
      log.log("warn", "volume data kept", {
        volume_id: entry.name,
        reason: "object-store cleanup is not implemented yet; remove the prefix by hand",
      });
      return Promise.resolve();
    },
  };
}

/** What the controller needs. */
export interface ControllerDeps {
  registry: VolumeRegistry;
  remover: VolumeDataRemover;
  /** Clock for createdAt (tests pin it). */
  now?: () => Date;
}

/** Controller capabilities, all implemented below. */
export const CONTROLLER_CAPABILITIES = [
  "CREATE_DELETE_VOLUME",
  "PUBLISH_UNPUBLISH_VOLUME",
  "EXPAND_VOLUME",
  "PUBLISH_READONLY",
  "SINGLE_NODE_MULTI_WRITER",
] as const;

/** Controller handlers keyed by RPC name; unlisted RPCs answer UNIMPLEMENTED. */
export function createControllerService(deps: ControllerDeps): ServiceHandlers {
  return {
    CreateVolume: (req) => createVolume(deps, req),
    DeleteVolume: (req) => deleteVolume(deps, req),
    ControllerPublishVolume: (req) => publishVolume(deps, req),
    ControllerUnpublishVolume: (req) => unpublishVolume(deps, req),
    ValidateVolumeCapabilities: (req) => validateCapabilities(deps, req),
    ControllerExpandVolume: (req) => expandVolume(deps, req),
    ControllerGetCapabilities: () =>
      Promise.resolve({
        capabilities: CONTROLLER_CAPABILITIES.map((type) => ({ rpc: { type } })),
      }),
  };
}

function stringMap(v: unknown): Record<string, string> {
  return v && typeof v === "object" ? { ...(v as Record<string, string>) } : {};
}

function volumeResponse(entry: VolumeEntry) {
  return {
    volume: {
      volume_id: entry.name,
      capacity_bytes: entry.capacityBytes,
      volume_context: entry.volumeContext,
    },
  };
}

async function createVolume(deps: ControllerDeps, req: CsiRequest) {
  const name = parseVolumeId(req.name, "name");
  const caps = parseCapabilities(req.volume_capabilities);
  if (req.volume_content_source) {
    throw invalidArgument(
      "volume_content_source is not supported: this driver cannot clone or restore",
    );
  }
  const params = stringMap(req.parameters);
  const fsType = resolveFsType(params, caps);
  const existing = await deps.registry.get(name);
  if (existing) return reuseExisting(existing, req, { params, fsType });
  const capacityBytes = resolveCapacity(req.capacity_range);
  const entry: VolumeEntry = {
    name,
    capacityBytes,
    volumeContext: volumeContext(params, { capacityBytes, fsType }),
    parameters: params,
    createdAt: (deps.now?.() ?? new Date()).toISOString(),
  };
  await deps.registry.put(entry);
  return volumeResponse(entry);
}

function reuseExisting(
  existing: VolumeEntry,
  req: CsiRequest,
  want: { params: Record<string, string>; fsType: string },
) {
  if (!capacityFits(existing.capacityBytes, req.capacity_range)) {
    throw alreadyExists(
      `volume ${existing.name} exists with ${existing.capacityBytes} bytes, which does not fit ` +
        `the requested capacity_range; use another name or the same size`,
    );
  }
  if (!sameMap(existing.parameters, want.params) || existing.volumeContext.fsType !== want.fsType) {
    throw alreadyExists(
      `volume ${existing.name} exists with different parameters or filesystem; use another name`,
    );
  }
  return volumeResponse(existing);
}

function sameMap(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}

async function deleteVolume(deps: ControllerDeps, req: CsiRequest) {
  const id = parseVolumeId(req.volume_id);
  const entry = await deps.registry.get(id);
  if (!entry) return {};
  await deps.remover.remove(entry);
  await deps.registry.delete(id);
  return {};
}

async function requireVolume(deps: ControllerDeps, id: string): Promise<VolumeEntry> {
  const entry = await deps.registry.get(id);
  if (!entry) throw notFound(`volume ${id} does not exist`);
  return entry;
}

function checkFsMatches(entry: VolumeEntry, cap: Capability, field: string): void {
  if (cap.fsType && cap.fsType !== entry.volumeContext.fsType) {
    throw invalidArgument(
      `${field}.mount.fs_type "${cap.fsType}" differs from the volume's filesystem ` +
        `"${entry.volumeContext.fsType}"`,
    );
  }
}

async function publishVolume(deps: ControllerDeps, req: CsiRequest) {
  const id = parseVolumeId(req.volume_id);
  parseRequiredString(req.node_id, "node_id");
  const cap = parseCapability(req.volume_capability);
  if (typeof req.readonly !== "boolean") throw invalidArgument("readonly is required");
  const entry = await requireVolume(deps, id);
  checkFsMatches(entry, cap, "volume_capability");
  const readonly = req.readonly || READ_ONLY_ACCESS_MODES.has(cap.accessMode);
  return { publish_context: { readonly: String(readonly) } };
}

function unpublishVolume(_deps: ControllerDeps, req: CsiRequest) {
  parseVolumeId(req.volume_id);
  // node_id is optional here (empty = from all nodes). Nothing is held per
  // node on the controller side, so an unknown volume is already unpublished.
  return Promise.resolve({});
}

async function validateCapabilities(deps: ControllerDeps, req: CsiRequest) {
  const id = parseVolumeId(req.volume_id);
  if (!Array.isArray(req.volume_capabilities) || req.volume_capabilities.length === 0) {
    throw invalidArgument("volume_capabilities is required");
  }
  const entry = await requireVolume(deps, id);
  try {
    const caps = parseCapabilities(req.volume_capabilities);
    caps.forEach((c, i) => checkFsMatches(entry, c, `volume_capabilities[${i}]`));
  } catch (e) {
    return { message: (e as Error).message };
  }
  return {
    confirmed: {
      volume_context: stringMap(req.volume_context),
      volume_capabilities: req.volume_capabilities,
      parameters: stringMap(req.parameters),
    },
  };
}

async function expandVolume(deps: ControllerDeps, req: CsiRequest) {
  const id = parseVolumeId(req.volume_id);
  if (!req.capacity_range) throw invalidArgument("capacity_range is required");
  if (req.volume_capability) parseCapability(req.volume_capability);
  const entry = await requireVolume(deps, id);
  const wanted = resolveCapacity(req.capacity_range, { defaultBytes: entry.capacityBytes });
  if (wanted <= entry.capacityBytes) {
    // Shrinking discards data; an equal or smaller request is already satisfied.
    return { capacity_bytes: entry.capacityBytes, node_expansion_required: true };
  }
  await deps.registry.put({ ...entry, capacityBytes: wanted });
  return { capacity_bytes: wanted, node_expansion_required: true };
}
