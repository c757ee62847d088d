/**
 * Request validation shared by the Controller and Node services. Every
 * failure is INVALID_ARGUMENT naming the field.
 *
 * @module
 */

import { invalidArgument } from "./errors.ts";
import type { VolumeCapability } from "./messages/mod.ts";

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

/**
 * A mount option name as mount(8) takes it: letters, digits, `-`, `_` and
 * `.` (e.g. `compress-force`, `_netdev`, `x-mount.mkdir`).
 */
const MOUNT_OPTION_NAME = /^[A-Za-z0-9._-]+$/;
/** A plain value: printable ASCII without `,`, whitespace or quotes. */
const MOUNT_OPTION_VALUE = /^[!#-&(-+\--~]+$/;
/**
 * A double-quoted value, exactly as kubelet writes an SELinux context
 * (`fmt.Sprintf("context=%q", …)` in kubernetes pkg/volume/util/selinux.go,
 * AddSELinuxMountOption): the quotes keep the category list's comma inside
 * one option, e.g. `context="system_u:object_r:container_file_t:s0:c1,c2"`.
 */
const QUOTED_MOUNT_OPTION_VALUE = /^"[!#-&(-~]+"$/;
/** The SELinux options of mount(8), the only ones that take a quoted value. */
const SELINUX_CONTEXT_OPTIONS: ReadonlySet<string> = new Set([
  "context",
  "fscontext",
  "defcontext",
  "rootcontext",
]);

const TOPOLOGY = "it changes the mount tree instead of mounting the volume";
const OTHER_DEVICE = "it names a device or path other than the volume's device";
const ESCALATION =
  "tenant filesystems are always mounted nodev,nosuid (no device nodes, no setuid programs)";
const PANIC = "a filesystem error would panic the whole node";

/**
 * Options that would break a guarantee of the driver (by lower-cased name),
 * with the reason the refusal gives. Everything else mount(8) accepts as one
 * option passes: the argv never goes through a shell, and the driver's own
 * `nodev,nosuid` come after the flags, so they win over e.g. `defaults`.
 */
const DENIED_MOUNT_OPTIONS: ReadonlyMap<string, string> = new Map<string, string>([
  // mount(8): operations on the mount tree (bind, move, remount, propagation).
  ...["remount", "bind", "rbind", "move"].map((n) => [n, TOPOLOGY] as [string, string]),
  ...["shared", "rshared", "slave", "rslave", "private", "rprivate", "unbindable", "runbindable"]
    .map((n) => [n, TOPOLOGY] as [string, string]),
  // mount(8) "LOOP-DEVICE SUPPORT": sets up and mounts a loop device.
  ...["loop", "offset", "sizelimit", "encryption"].map((n) =>
    [n, OTHER_DEVICE] as [string, string]
  ),
  // xfs(5) logdev=/rtdev=, ext4(5) journal_path=/journal_dev=, btrfs(5) device=.
  ...["logdev", "rtdev", "journal_path", "journal_dev", "device"].map((n) =>
    [n, OTHER_DEVICE] as [string, string]
  ),
  // mount(8) X-mount.idmap=: a user namespace file (/proc/<pid>/ns/user) or an ID map.
  ["x-mount.idmap", OTHER_DEVICE],
  // mount(8) helper=: the later umount would run /sbin/umount.<type> instead.
  ["helper", "it replaces the umount the driver relies on"],
  ["suid", ESCALATION],
  ["dev", ESCALATION],
]);

/** Option values refused although the option is fine: ext4(5) errors=, btrfs(5) fatal_errors=. */
const DENIED_MOUNT_OPTION_VALUES: ReadonlyMap<string, string> = new Map([
  ["errors=panic", PANIC],
  ["fatal_errors=panic", PANIC],
]);

/** Spec limit on the total size of mount_flags. */
const MAX_MOUNT_FLAGS_BYTES = 4096;

/**
 * Check one mount flag: a single mount(8) option `name` or `name=value`
 * (see {@linkcode MOUNT_OPTION_NAME}, {@linkcode MOUNT_OPTION_VALUE}), not
 * one of the refused options. Returns it unchanged. A refusal names at most
 * the option's name, never its value or the flag list: mount flags may be
 * sensitive (CSI spec).
 *
 * @example
 * ```ts
 * parseMountFlag("compress-force=zstd", "mount_flags[0]"); // → "compress-force=zstd"
 * parseMountFlag("logdev=/dev/sdb", "mount_flags[0]"); // throws INVALID_ARGUMENT naming "logdev"
 * ```
 */
export function parseMountFlag(flag: unknown, field: string): string {
  if (typeof flag !== "string") throw invalidArgument(`${field} is not a string`);
  const eq = flag.indexOf("=");
  const name = eq < 0 ? flag : flag.slice(0, eq);
  if (!MOUNT_OPTION_NAME.test(name)) {
    throw invalidArgument(
      `${field} is not one mount option: give each option as its own mount flag, ` +
        `a name of letters, digits, "-", "_" and "." with an optional "=value"`,
    );
  }
  const lower = name.toLowerCase();
  if (eq >= 0) {
    const value = flag.slice(eq + 1);
    const quotedOk = SELINUX_CONTEXT_OPTIONS.has(lower) && QUOTED_MOUNT_OPTION_VALUE.test(value);
    if (!quotedOk && !MOUNT_OPTION_VALUE.test(value)) {
      throw invalidArgument(
        `${field}: mount option "${name}" has a value that is not allowed: use printable ` +
          `characters without ",", spaces or quotes (only SELinux contexts may be double-quoted)`,
      );
    }
  }
  const denied = DENIED_MOUNT_OPTIONS.get(lower);
  if (denied) {
    throw invalidArgument(
      `${field}: mount option "${name}" is not allowed by this driver: ${denied}; ` +
        `remove it from the StorageClass mountOptions`,
    );
  }
  const deniedValue = eq >= 0 &&
    DENIED_MOUNT_OPTION_VALUES.get(`${lower}=${flag.slice(eq + 1).toLowerCase()}`);
  if (deniedValue) {
    throw invalidArgument(
      `${field}: mount option "${name}" with this value is not allowed by this driver: ` +
        `${deniedValue}; leave "${name}" at its default or choose another action`,
    );
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
  // Decoded or written by hand (the CLI, tests): every field is checked, none trusted.
  const c = cap as VolumeCapability;
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
  const mountFlags = flags.map((f, i) => parseMountFlag(f, `${field}.mount.mount_flags[${i}]`));
  return { accessType: "mount", ...(fsType ? { fsType } : {}), mountFlags, accessMode };
}

function parseAccessMode(am: unknown, field: string): string {
  const mode = am && typeof am === "object" ? (am as { mode?: unknown }).mode : undefined;
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
