/**
 * Request validation shared by the Controller and Node services. Every
 * failure is INVALID_ARGUMENT naming the field.
 *
 * @module
 */

import { invalidArgument } from "./errors.ts";
import type { CsiRequest } from "./pipeline.ts";

/** CSI's general limit on string fields, and the longest volume ID we accept. */
export const MAX_VOLUME_ID_BYTES = 128;
const VOLUME_ID = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/;

/** True when `id` satisfies {@linkcode parseVolumeId}'s rule. */
export function isValidVolumeId(id: string): boolean {
  return id !== "" && new TextEncoder().encode(id).length <= MAX_VOLUME_ID_BYTES &&
    VOLUME_ID.test(id) && !id.includes("..");
}

/**
 * Check a volume ID (it becomes part of host paths and object-store
 * prefixes): lowercase letters, digits, `-`, `.`, starting and ending with a
 * letter or digit, no `..`, 1 to 128 bytes. This is a rule for IDs; a
 * CreateVolume name may be anything ({@linkcode volumeIdForName} in
 * `volume_name.ts` derives an ID from it).
 */
export function parseVolumeId(id: unknown, field = "volume_id"): string {
  if (typeof id !== "string" || id === "") throw invalidArgument(`${field} is required`);
  const bytes = new TextEncoder().encode(id).length;
  if (bytes > MAX_VOLUME_ID_BYTES) {
    throw invalidArgument(`${field} is ${bytes} bytes; at most ${MAX_VOLUME_ID_BYTES} are allowed`);
  }
  if (!VOLUME_ID.test(id) || id.includes("..")) {
    throw invalidArgument(
      `${field} ${JSON.stringify(id)} is not valid: use lowercase letters, digits, "-" and ".", ` +
        `start and end with a letter or digit, no ".."`,
    );
  }
  return id;
}

/** Check a required, non-empty string field (e.g. node_id). */
export function parseRequiredString(value: unknown, field: string, maxBytes = 256): string {
  if (typeof value !== "string" || value === "") throw invalidArgument(`${field} is required`);
  if (new TextEncoder().encode(value).length > maxBytes) {
    throw invalidArgument(`${field} is longer than ${maxBytes} bytes`);
  }
  return value;
}

/**
 * Check a host path from the CO: absolute, normalized (no `.`/`..`/empty
 * segments, no trailing slash), no NUL.
 */
export function parseAbsolutePath(p: unknown, field: string): string {
  if (typeof p !== "string" || p === "") throw invalidArgument(`${field} is required`);
  if (p.includes("\0")) throw invalidArgument(`${field} contains a NUL byte`);
  if (!p.startsWith("/")) throw invalidArgument(`${field} "${p}" is not an absolute path`);
  if (p === "/") throw invalidArgument(`${field} must not be "/"`);
  const segments = p.slice(1).split("/");
  for (const s of segments) {
    if (s === "" || s === "." || s === "..") {
      throw invalidArgument(
        `${field} "${p}" is not a normalized path (empty, "." or ".." segment)`,
      );
    }
  }
  return p;
}

/** Filesystems the driver can create when none is configured otherwise. */
export const DEFAULT_FS_TYPES: readonly string[] = ["ext4", "xfs", "btrfs"];

/** Access modes this driver serves (one writer node at most). */
export const SUPPORTED_ACCESS_MODES: ReadonlySet<string> = new Set([
  "SINGLE_NODE_WRITER",
  "SINGLE_NODE_READER_ONLY",
  "SINGLE_NODE_SINGLE_WRITER",
  "SINGLE_NODE_MULTI_WRITER",
  "MULTI_NODE_READER_ONLY",
]);

/** Read-only access modes. */
export const READ_ONLY_ACCESS_MODES: ReadonlySet<string> = new Set([
  "SINGLE_NODE_READER_ONLY",
  "MULTI_NODE_READER_ONLY",
]);

/** A validated VolumeCapability. */
export interface Capability {
  accessType: "mount" | "block";
  /** Mount only; absent when the CO left fs_type empty. */
  fsType?: string;
  mountFlags: string[];
  accessMode: string;
}

/** Alias of {@linkcode Capability} used by the node service. */
export type ParsedCapability = Capability;

/** Options of {@linkcode parseCapability}. */
export interface CapabilityOptions {
  allowedFsTypes?: readonly string[];
  /** Field name for messages, e.g. `volume_capabilities[1]`. */
  field?: string;
}

const MOUNT_FLAG = /^[a-z0-9_]+(=[A-Za-z0-9_.:\/-]+)?$/;
/**
 * Flags that would change what is mounted or weaken the node: a different
 * device or filesystem, device nodes/setuid on a tenant's filesystem, a remount
 * or bind/move that escapes the target.
 */
const DENIED_MOUNT_FLAGS: ReadonlySet<string> = new Set([
  "remount",
  "bind",
  "rbind",
  "move",
  "dev",
  "suid",
  "loop",
  "offset",
  "sizelimit",
  "encryption",
  "x-mount.mkdir",
  "helper",
  "context",
  "fscontext",
  "defcontext",
  "rootcontext",
  "owner",
  "user",
  "users",
  "group",
]);
/** Spec limit on the total size of mount_flags. */
const MAX_MOUNT_FLAGS_BYTES = 4096;

/** Check one mount flag; returns it unchanged. */
export function parseMountFlag(flag: unknown, field: string): string {
  if (typeof flag !== "string" || !MOUNT_FLAG.test(flag)) {
    // The flag itself is not echoed: mount flags may carry secrets.
    throw invalidArgument(
      `${field} has a mount flag that is not of the form name or name=value ` +
        `(lowercase letters, digits, "_"; value without "," or spaces)`,
    );
  }
  const name = flag.split("=", 1)[0];
  if (DENIED_MOUNT_FLAGS.has(name)) {
    throw invalidArgument(`${field}: mount flag "${name}" is not allowed by this driver`);
  }
  return flag;
}

/**
 * Check a VolumeCapability: exactly one access type, a supported access
 * mode, an allowed fs type and safe mount flags.
 */
export function parseCapability(cap: unknown, opts: CapabilityOptions = {}): Capability {
  const field = opts.field ?? "volume_capability";
  if (cap === null || typeof cap !== "object") throw invalidArgument(`${field} is required`);
  const c = cap as CsiRequest;
  const accessMode = parseAccessMode(c.access_mode, field);
  if (c.block && c.mount) throw invalidArgument(`${field} sets both block and mount`);
  if (c.block) return { accessType: "block", mountFlags: [], accessMode };
  if (!c.mount) throw invalidArgument(`${field} needs an access type (block or mount)`);
  const allowed = opts.allowedFsTypes ?? DEFAULT_FS_TYPES;
  const fsType = typeof c.mount.fs_type === "string" ? c.mount.fs_type : "";
  if (fsType !== "" && !allowed.includes(fsType)) {
    throw invalidArgument(
      `${field}.mount.fs_type "${fsType}" is not supported; use one of ${allowed.join(", ")}`,
    );
  }
  if (c.mount.volume_mount_group) {
    throw invalidArgument(`${field}.mount.volume_mount_group is not supported by this driver`);
  }
  const flags: unknown[] = Array.isArray(c.mount.mount_flags) ? c.mount.mount_flags : [];
  const total = flags.reduce((n: number, f) => n + String(f).length, 0);
  if (total > MAX_MOUNT_FLAGS_BYTES) {
    throw invalidArgument(`${field}.mount.mount_flags exceed ${MAX_MOUNT_FLAGS_BYTES} bytes`);
  }
  const mountFlags = flags.map((f) => parseMountFlag(f, `${field}.mount.mount_flags`));
  return { accessType: "mount", ...(fsType ? { fsType } : {}), mountFlags, accessMode };
}

function parseAccessMode(am: unknown, field: string): string {
  const mode = am && typeof am === "object" ? (am as CsiRequest).mode : undefined;
  if (mode === undefined || mode === null || mode === "UNKNOWN" || mode === 0) {
    throw invalidArgument(`${field}.access_mode is required`);
  }
  if (typeof mode !== "string" || !SUPPORTED_ACCESS_MODES.has(mode)) {
    throw invalidArgument(
      `${field}.access_mode ${mode} is not supported: a volume has at most one writer node; ` +
        `use one of ${[...SUPPORTED_ACCESS_MODES].join(", ")}`,
    );
  }
  return mode;
}

/** Check a non-empty list of capabilities (CreateVolume, ValidateVolumeCapabilities). */
export function parseCapabilities(
  caps: unknown,
  opts: Omit<CapabilityOptions, "field"> & { field?: string } = {},
): Capability[] {
  const field = opts.field ?? "volume_capabilities";
  if (!Array.isArray(caps) || caps.length === 0) throw invalidArgument(`${field} is required`);
  return caps.map((c, i) => parseCapability(c, { ...opts, field: `${field}[${i}]` }));
}
