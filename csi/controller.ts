/**
 * The CSI Controller service: volumes are records here; their data lives in
 * the object store and is created lazily by the node on first stage.
 *
 * CreateVolume derives the volume ID from the name (`volume_name.ts`), checks
 * the object store (pre-flight) and records the volume's StorageClass
 * parameters; ControllerPublish/Unpublish record which nodes the volume is
 * attached to and how (an unknown node is NOT_FOUND, see `known_nodes.ts`;
 * the publish context carries the volume's current capacity, so a volume
 * expanded offline attaches at its new size); ControllerExpandVolume records
 * the new capacity, refused while the volume is published anywhere (offline
 * expansion); DeleteVolume deletes every object under
 * `<storageURL>/<volumeId>/` (or keeps them with `deletePolicy: retain`),
 * refusing while any node still has the volume published.
 *
 * Every volume is pinned (`zerofs/volume_pin.ts`): CreateVolume fixes its
 * location and Secret names in the volume context and the record, and
 * DeleteVolume works at the pinned location whatever the ConfigMap says
 * now (a disagreement is logged, the pin wins). A record without a pin
 * (written before pins, or an adopted volume of the original driver) is
 * pinned with the current settings the first time Publish or Delete sees
 * it; the publish context then carries that pin to the node, whose volume
 * context has none.
 *
 * @module
 */

import {
  applyPin,
  deleteVolumeData,
  describeDisagreement,
  hasVolumeData,
  type ObjectStoreAccess,
  PIN_CONTEXT_PREFIX,
  pinFromContext,
  pinFromSettings,
  pinToContext,
  preflightCheck,
  resolveVolumeLocation,
  type S3ClientTimeouts,
  volumeParameterOptions,
  type VolumePin,
  type VolumeSettings,
} from "../zerofs/mod.ts";
import { capacityFits, resolveCapacity } from "./capacity.ts";
import type { ControllerSettings } from "./controller_settings.ts";
import { alreadyExists, failedPrecondition, invalidArgument, notFound } from "./errors.ts";
import { ANY_NODE, type KnownNodes } from "./known_nodes.ts";
import type { Logger } from "./log.ts";
import { CONTEXT_CAPACITY_BYTES, resolveFsType, volumeContext } from "./parameters.ts";
import type {
  ControllerExpandVolumeRequest__Output,
  ControllerHandlers,
  ControllerPublishVolumeRequest__Output,
  ControllerUnpublishVolumeRequest__Output,
  CreateVolumeRequest__Output,
  CreateVolumeResponse,
  DeleteVolumeRequest__Output,
  ValidateVolumeCapabilitiesRequest__Output,
} from "./messages/mod.ts";
import {
  publicationConflict,
  publicationOf,
  publishedNodesOf,
  withoutPublication,
  withPublication,
} from "./publications.ts";
import type { ControllerVolumeEntry, VolumeRegistry } from "./registry.ts";
import {
  type Capability,
  parseCapabilities,
  parseCapability,
  parseRequiredString,
  parseVolumeId,
  READ_ONLY_ACCESS_MODES,
} from "./validate.ts";
import { parseVolumeName, volumeIdForName } from "./volume_name.ts";

/** What the controller needs. */
export interface ControllerDeps {
  registry: VolumeRegistry;
  /** Where volume settings and credentials come from. */
  settings: ControllerSettings;
  log: Logger;
  /** Clock for createdAt/retainedAt (tests pin it). */
  now?: () => Date;
  /** Object-store timeouts for DeleteVolume's list/delete calls. */
  deleteTimeouts?: S3ClientTimeouts;
  /** Which node IDs ControllerPublishVolume accepts; default every one. */
  knownNodes?: KnownNodes;
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
export function createControllerService(deps: ControllerDeps): ControllerHandlers {
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

function volumeResponse(entry: ControllerVolumeEntry): CreateVolumeResponse {
  return {
    volume: {
      volume_id: entry.name,
      capacity_bytes: entry.capacityBytes,
      volume_context: entry.volumeContext,
    },
  };
}

async function createVolume(deps: ControllerDeps, req: CreateVolumeRequest__Output) {
  const requestName = parseVolumeName(req.name);
  const name = volumeIdForName(requestName);
  const caps = parseCapabilities(req.volume_capabilities);
  if (req.volume_content_source) {
    throw invalidArgument(
      "volume_content_source is not supported: this driver cannot clone or restore",
    );
  }
  const params = stringMap(req.parameters);
  const fsType = resolveFsType(params, caps);
  const options = volumeParameterOptions(params);
  const existing = await deps.registry.get(name);
  if (existing?.retainedAt) {
    throw alreadyExists(
      `volume ${name} was deleted with deletePolicy "retain" at ${existing.retainedAt} and its ` +
        `objects were kept; use another name, or remove its record to reuse the name`,
    );
  }
  if (existing) return reuseExisting(existing, req, { requestName, params, fsType });
  const capacityBytes = resolveCapacity(req.capacity_range);
  const access = await deps.settings.access(params, stringMap(req.secrets));
  const location = resolveVolumeLocation(access.settings, name);
  if (options.preflight) await preflight(deps, name, access, location.scheme);
  const pin = pinFromSettings(access.settings);
  const entry: ControllerVolumeEntry = {
    name,
    requestName,
    capacityBytes,
    volumeContext: volumeContext(params, { capacityBytes, fsType, pin }),
    parameters: params,
    pin,
    createdAt: (deps.now?.() ?? new Date()).toISOString(),
    publishedNodes: [],
  };
  await deps.registry.put(entry);
  deps.log.log("info", "volume created", {
    volume_id: name,
    ...(requestName !== name ? { name: requestName } : {}),
    location: location.url,
    delete_policy: options.deletePolicy,
  });
  return volumeResponse(entry);
}

async function preflight(
  deps: ControllerDeps,
  volumeId: string,
  access: ObjectStoreAccess,
  scheme: string,
): Promise<void> {
  if (scheme === "s3") return await preflightCheck({ ...access, volumeId });
  if (scheme !== "memory") {
    deps.log.log("warn", "object-store pre-flight skipped", {
      volume_id: volumeId,
      reason: `only s3:// storage URLs are checked, this one is ${scheme}://`,
    });
  }
}

function reuseExisting(
  existing: ControllerVolumeEntry,
  req: CreateVolumeRequest__Output,
  want: { requestName: string; params: Record<string, string>; fsType: string },
) {
  // Records written before requestName existed were created under their ID.
  const createdAs = existing.requestName ?? existing.name;
  if (createdAs !== want.requestName) {
    throw alreadyExists(
      `name ${JSON.stringify(want.requestName)} maps to volume ID ${existing.name}, which ` +
        `volume ${JSON.stringify(createdAs)} already has; use another name`,
    );
  }
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

/**
 * Record found → refuse while published; `retain` → keep the objects and
 * leave a tombstone; else delete under the pinned `<storageURL>/<id>/` (an
 * unpinned record is pinned first, with the current settings) and drop the
 * record. No record → a legacy (original driver) volume, or a retry after
 * success: delete under the controller's default storageURL (nothing there
 * = success).
 */
async function deleteVolume(deps: ControllerDeps, req: DeleteVolumeRequest__Output) {
  const id = parseVolumeId(req.volume_id);
  const secrets = stringMap(req.secrets);
  const entry = await deps.registry.get(id);
  if (entry?.retainedAt) return {};
  if (!entry) return await deleteUnrecorded(deps, id, secrets);
  const nodes = publishedNodesOf(entry);
  if (nodes.length > 0) {
    throw failedPrecondition(
      `volume ${id} is still published to node(s) ${nodes.join(", ")}; ` +
        `it must be detached (ControllerUnpublishVolume) before it can be deleted`,
    );
  }
  if (volumeParameterOptions(entry.parameters).deletePolicy === "retain") {
    return await retainVolume(deps, entry);
  }
  const access = await pinnedAccess(deps, await ensurePinned(deps, entry), secrets);
  await deleteObjects(deps, id, access);
  await deps.registry.delete(id);
  return {};
}

/**
 * The record with a pin: a record written before pins (or an adopted
 * volume's) is pinned now with what the settings say, saved, and logged —
 * from here on a ConfigMap edit cannot move it.
 */
async function ensurePinned(
  deps: ControllerDeps,
  entry: ControllerVolumeEntry,
): Promise<ControllerVolumeEntry> {
  if (entry.pin) return entry;
  const pinned = await withPin(deps, entry);
  await deps.registry.put(pinned);
  return pinned;
}

/** The record with a pin from the current settings (logged), not yet saved. */
async function withPin(
  deps: ControllerDeps,
  entry: ControllerVolumeEntry,
): Promise<ControllerVolumeEntry> {
  if (entry.pin) return entry;
  const settings = await deps.settings.resolve(entry.parameters);
  logPinned(deps, entry.name, settings, "its record predates location pinning");
  return { ...entry, pin: pinFromSettings(settings) };
}

function logPinned(deps: ControllerDeps, id: string, settings: VolumeSettings, why: string) {
  deps.log.log("info", "volume pinned to its location", {
    volume_id: id,
    location: resolveVolumeLocation(settings, id).url,
    reason: `${why}; a later ConfigMap edit will not move it`,
  });
}

/** Object-store access at the record's pin; where the settings now disagree, warn (the pin wins). */
async function pinnedAccess(
  deps: ControllerDeps,
  entry: ControllerVolumeEntry,
  secrets: Record<string, string>,
): Promise<ObjectStoreAccess> {
  const { access, disagreements } = await deps.settings.pinnedAccess(
    entry.parameters,
    entry.pin ?? {},
    secrets,
  );
  for (const d of disagreements) {
    deps.log.log("warn", "the settings disagree with the volume's pin", {
      volume_id: entry.name,
      setting: d.key,
      detail: describeDisagreement(d),
    });
  }
  return access;
}

async function deleteUnrecorded(
  deps: ControllerDeps,
  id: string,
  secrets: Record<string, string>,
) {
  const access = await deps.settings.legacyAccess(secrets);
  if (!access) {
    deps.log.log("warn", "unknown volume deleted without touching the object store", {
      volume_id: id,
      reason: "no record of it and no default storageURL (--settings-file, --default-config-map)",
    });
    return {};
  }
  await deleteObjects(deps, id, access);
  return {};
}

async function retainVolume(deps: ControllerDeps, entry: ControllerVolumeEntry) {
  const retainedAt = (deps.now?.() ?? new Date()).toISOString();
  // The tombstone names where the kept objects are; without settings to pin from,
  // it stays unpinned: the objects are kept either way.
  const pinned = await withPin(deps, entry).catch(() => entry);
  await deps.registry.put({ ...pinned, retainedAt });
  let location = "(unresolved)";
  try {
    const settings = applyPin(await deps.settings.resolve(entry.parameters), pinned.pin ?? {})
      .settings;
    location = resolveVolumeLocation(settings, entry.name).url;
  } catch { /* the log line is informational; the objects are kept either way */ }
  deps.log.log("warn", "volume deleted, objects retained", {
    volume_id: entry.name,
    location,
    reason: 'deletePolicy "retain"; remove the prefix by hand when no longer needed',
  });
  return {};
}

async function deleteObjects(
  deps: ControllerDeps,
  id: string,
  access: ObjectStoreAccess,
): Promise<void> {
  const location = resolveVolumeLocation(access.settings, id);
  if (location.scheme === "memory") return;
  if (location.scheme !== "s3") {
    throw failedPrecondition(
      `cannot delete the objects of volume ${id} at ${location.url}: only s3:// storage is ` +
        `cleaned up by this driver; set deletePolicy "retain" and remove them by hand`,
    );
  }
  await deleteVolumeData({
    ...access,
    volumeId: id,
    timeouts: deps.deleteTimeouts,
    log: (msg, fields) => deps.log.log("info", msg, fields),
  });
}

async function requireVolume(deps: ControllerDeps, id: string): Promise<ControllerVolumeEntry> {
  const entry = await deps.registry.get(id);
  if (!entry || entry.retainedAt) throw notFound(`volume ${id} does not exist`);
  return entry;
}

function checkFsMatches(entry: ControllerVolumeEntry, cap: Capability, field: string): void {
  // An adopted volume of the original driver has no recorded filesystem: the node decides.
  const recorded = entry.volumeContext.fsType;
  if (cap.fsType && recorded && cap.fsType !== recorded) {
    throw invalidArgument(
      `${field}.mount.fs_type "${cap.fsType}" differs from the volume's filesystem ` +
        `"${entry.volumeContext.fsType}"`,
    );
  }
}

/**
 * Records the publication to `node_id` (intent before the attach happens).
 * The same publication again is a retry; another capability or readonly
 * flag on the same node is ALREADY_EXISTS.
 */
async function publishVolume(deps: ControllerDeps, req: ControllerPublishVolumeRequest__Output) {
  const id = parseVolumeId(req.volume_id);
  const nodeId = parseRequiredString(req.node_id, "node_id");
  const cap = parseCapability(req.volume_capability);
  if (typeof req.readonly !== "boolean") throw invalidArgument("readonly is required");
  // A static PV's volume context is user input: its pin keys are checked like settings.
  const contextPin = pinFromContext(stringMap(req.volume_context), "volume_context");
  const found = await deps.registry.get(id) ??
    await adoptLegacyVolume(deps, id, { secrets: stringMap(req.secrets), contextPin });
  if (!found || found.retainedAt) throw notFound(`volume ${id} does not exist`);
  const knownNodes = deps.knownNodes ?? ANY_NODE;
  if (!(await knownNodes.exists(nodeId))) {
    throw notFound(
      `node ${JSON.stringify(nodeId)} does not exist (not in ${knownNodes.source}); ` +
        `check node_id, or start the node agent there first`,
    );
  }
  const entry = await ensurePinned(deps, found);
  checkFsMatches(entry, cap, "volume_capability");
  const wanted = publicationOf(cap, req.readonly);
  const published = publishedNodesOf(entry).includes(nodeId);
  const conflict = published ? publicationConflict(entry.publications?.[nodeId], wanted) : null;
  if (conflict) {
    throw alreadyExists(
      `volume ${id} is already published to node ${JSON.stringify(nodeId)} with ${conflict}; ` +
        `unpublish it there before publishing it differently`,
    );
  }
  if (!published || !entry.publications?.[nodeId]) {
    await deps.registry.put(withPublication(entry, nodeId, wanted));
  }
  const readonly = req.readonly || READ_ONLY_ACCESS_MODES.has(cap.accessMode);
  return { publish_context: publishContext(entry, readonly) };
}

/**
 * `readonly`, and the current capacity (CONTEXT_CAPACITY_BYTES): the volume
 * context keeps the size at creation, so after an offline
 * ControllerExpandVolume this is how NodeStageVolume learns the new size.
 * An adopted volume has no recorded capacity (0): its device file is the truth.
 * A volume whose context carries no pin (created before pins, or adopted)
 * gets the record's pin here, so the node stages it where the controller
 * pinned it.
 */
function publishContext(entry: ControllerVolumeEntry, readonly: boolean): Record<string, string> {
  const contextPinned = Object.keys(entry.volumeContext).some((k) =>
    k.startsWith(PIN_CONTEXT_PREFIX)
  );
  return {
    readonly: String(readonly),
    ...(entry.capacityBytes > 0 ? { [CONTEXT_CAPACITY_BYTES]: String(entry.capacityBytes) } : {}),
    ...(contextPinned ? {} : pinToContext(entry.pin ?? {})),
  };
}

/**
 * A volume of the original Go driver (volume ID = PV name) has no record but
 * has objects under the default storageURL (or where a hand-written PV's
 * volume context pins it): record it on its first attach, pinned to where
 * its objects were found, so attach tracking, DeleteVolume's guard and the
 * pin cover it from then on. No objects there → null (NOT_FOUND).
 */
async function adoptLegacyVolume(
  deps: ControllerDeps,
  id: string,
  from: { secrets: Record<string, string>; contextPin: VolumePin | null },
): Promise<ControllerVolumeEntry | null> {
  const legacy = await deps.settings.legacyAccess(from.secrets);
  if (!legacy) return null;
  const access = from.contextPin
    ? await pinnedLegacyAccess(deps, legacy.settings, from.contextPin, from.secrets)
    : legacy;
  if (!(await hasVolumeData({ ...access, volumeId: id }))) return null;
  const configMapName = deps.settings.defaultConfigMapName;
  const entry: ControllerVolumeEntry = {
    name: id,
    capacityBytes: 0,
    volumeContext: {},
    parameters: configMapName ? { configMapName } : {},
    pin: pinFromSettings(access.settings),
    createdAt: (deps.now?.() ?? new Date()).toISOString(),
  };
  await deps.registry.put(entry);
  deps.log.log("info", "adopted a volume without a record (original driver)", {
    volume_id: id,
    location: resolveVolumeLocation(access.settings, id).url,
  });
  logPinned(deps, id, access.settings, "adopted");
  return entry;
}

async function pinnedLegacyAccess(
  deps: ControllerDeps,
  legacy: VolumeSettings,
  pin: VolumePin,
  secrets: Record<string, string>,
): Promise<ObjectStoreAccess> {
  const settings = applyPin(legacy, pin).settings;
  return { settings, secrets: await deps.settings.secrets(secrets, settings) };
}

/** Removes `node_id` (empty = every node) from publishedNodes; unknown volume = already done. */
async function unpublishVolume(
  deps: ControllerDeps,
  req: ControllerUnpublishVolumeRequest__Output,
) {
  const id = parseVolumeId(req.volume_id);
  const nodeId = typeof req.node_id === "string" ? req.node_id : "";
  const entry = await deps.registry.get(id);
  if (!entry || entry.retainedAt) return {};
  const left = withoutPublication(entry, nodeId);
  if (left.publishedNodes!.length !== publishedNodesOf(entry).length) {
    await deps.registry.put(left);
  }
  return {};
}

async function validateCapabilities(
  deps: ControllerDeps,
  req: ValidateVolumeCapabilitiesRequest__Output,
) {
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

/**
 * Records the new capacity; the node grows device and filesystem the next
 * time it stages the volume (the publish context carries the size). OFFLINE
 * expansion only: while a node has the volume published, that node's
 * attachment keeps the old size (a VolumeAttachment can outlive a quick pod
 * restart), so the request is refused with FAILED_PRECONDITION, as the CSI
 * spec allows, and nothing changes; the CO retries after the detach.
 */
async function expandVolume(deps: ControllerDeps, req: ControllerExpandVolumeRequest__Output) {
  const id = parseVolumeId(req.volume_id);
  if (!req.capacity_range) throw invalidArgument("capacity_range is required");
  if (req.volume_capability) parseCapability(req.volume_capability);
  const entry = await requireVolume(deps, id);
  const wanted = resolveCapacity(req.capacity_range, { defaultBytes: entry.capacityBytes });
  if (wanted <= entry.capacityBytes) {
    // Shrinking discards data; an equal or smaller request is already satisfied.
    return { capacity_bytes: entry.capacityBytes, node_expansion_required: true };
  }
  const nodes = publishedNodesOf(entry);
  if (nodes.length > 0) {
    throw failedPrecondition(
      `volume ${id} is in use: published to node(s) ${nodes.join(", ")}; this driver ` +
        `expands offline, once no node has the volume attached — delete the pods that use it ` +
        `and the expansion proceeds after the detach`,
    );
  }
  await deps.registry.put({ ...entry, capacityBytes: wanted });
  return { capacity_bytes: wanted, node_expansion_required: true };
}
