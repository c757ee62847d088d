/**
 * CreateVolume names → volume IDs. The CSI spec lets a CO pick any name (up
 * to 128 bytes); the volume ID becomes part of host paths and object-store
 * prefixes, so it must satisfy `parseVolumeId`'s rule.
 *
 * A name that already is a valid ID (Kubernetes' `pvc-<uid>`) is its own ID:
 * the original driver's volumes have their PV name as ID and must keep
 * resolving to the same object-store prefix. Any other name maps to a
 * sanitized, lowercased form of it plus a hash of the exact name, so "A" and
 * "a" get different IDs and the same name always gets the same ID.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { invalidArgument } from "./errors.ts";
import { isValidVolumeId, MAX_VOLUME_ID_BYTES } from "./validate.ts";

/** CSI's limit on the `name` field. */
export const MAX_VOLUME_NAME_BYTES = 128;
/** Hex digits of the name's SHA-256 appended to a derived ID. */
const HASH_HEX = 16;

/**
 * Check a CreateVolume name: required, at most 128 bytes, no NUL (it is
 * stored and logged). Anything else is allowed.
 */
export function parseVolumeName(name: unknown): string {
  if (typeof name !== "string" || name === "") throw invalidArgument("name is required");
  const bytes = new TextEncoder().encode(name).length;
  if (bytes > MAX_VOLUME_NAME_BYTES) {
    throw invalidArgument(
      `name is ${bytes} bytes; at most ${MAX_VOLUME_NAME_BYTES} are allowed (CSI's limit)`,
    );
  }
  if (name.includes("\0")) throw invalidArgument("name contains a NUL byte");
  return name;
}

/**
 * The volume ID of a (parsed) CreateVolume name: the name itself when it is a
 * valid ID, else `<sanitized>-<16 hex of sha256(name)>` (≤ 128 bytes), or just
 * the hash when nothing of the name survives sanitizing.
 *
 * @example
 * ```ts
 * volumeIdForName("pvc-0b9e5c1a");          // "pvc-0b9e5c1a"
 * volumeIdForName("sanity-A1B2C3D4-1a2b");  // "sanity-a1b2c3d4-1a2b-<16 hex>"
 * ```
 */
export function volumeIdForName(name: string): string {
  if (isValidVolumeId(name)) return name;
  const hash = createHash("sha256").update(name, "utf8").digest("hex").slice(0, HASH_HEX);
  const room = MAX_VOLUME_ID_BYTES - HASH_HEX - 1;
  const slug = sanitize(name).slice(0, room).replace(/[^a-z0-9]+$/, "");
  return slug === "" ? hash : `${slug}-${hash}`;
}

/** Lowercase; every run of characters outside [a-z0-9.-] and every ".." → "-"; alnum ends. */
function sanitize(name: string): string {
  return name.toLowerCase()
    .replace(/[^a-z0-9.-]+/g, "-")
    .replace(/\.{2,}/g, "-")
    .replace(/-{2,}/g, "-")
    .replace(/^[^a-z0-9]+/, "")
    .replace(/[^a-z0-9]+$/, "");
}
