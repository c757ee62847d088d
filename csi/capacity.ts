/**
 * CSI capacity_range semantics: required is a floor, limit a ceiling, 0 means
 * unset; the size is rounded up to the block size.
 *
 * @module
 */

import { invalidArgument, outOfRange } from "./errors.ts";
import type { CapacityRange__Output } from "./messages/mod.ts";

/** A decoded capacity_range; a field left out (a request written by hand) counts as 0. */
export type CapacityRangeInput = Partial<CapacityRange__Output>;

/** Device sizes are multiples of this. */
export const BLOCK_BYTES = 4096;
/** Size when the CO asks for none. */
export const DEFAULT_CAPACITY_BYTES = 1024 ** 3;

/** Round up to a multiple of {@linkcode BLOCK_BYTES}. */
export function roundUpToBlock(bytes: number): number {
  return Math.ceil(bytes / BLOCK_BYTES) * BLOCK_BYTES;
}

/**
 * The size to provision for `range` (may be absent). OUT_OF_RANGE when the
 * limit is below the requirement or rounding would exceed the limit.
 */
export function resolveCapacity(
  range: CapacityRangeInput | null | undefined,
  opts: { defaultBytes?: number; field?: string } = {},
): number {
  const field = opts.field ?? "capacity_range";
  const required = Number(range?.required_bytes ?? 0);
  const limit = Number(range?.limit_bytes ?? 0);
  if (!Number.isSafeInteger(required) || required < 0) {
    throw invalidArgument(`${field}.required_bytes must be a non-negative integer`);
  }
  if (!Number.isSafeInteger(limit) || limit < 0) {
    throw invalidArgument(`${field}.limit_bytes must be a non-negative integer`);
  }
  if (limit > 0 && required > limit) {
    throw outOfRange(`${field}.required_bytes ${required} exceeds limit_bytes ${limit}`);
  }
  const wanted = required > 0
    ? required
    : Math.min(opts.defaultBytes ?? DEFAULT_CAPACITY_BYTES, limit || Infinity);
  const size = roundUpToBlock(wanted);
  if (size === 0) {
    throw outOfRange(`${field}.limit_bytes ${limit} is below one ${BLOCK_BYTES}-byte block`);
  }
  if (limit > 0 && size > limit) {
    throw outOfRange(
      `${field}: ${wanted} bytes rounded up to ${BLOCK_BYTES}-byte blocks is ${size}, ` +
        `above limit_bytes ${limit}; raise the limit or use a multiple of ${BLOCK_BYTES}`,
    );
  }
  return size;
}

/** True when an existing size satisfies `range` (idempotent CreateVolume). */
export function capacityFits(
  sizeBytes: number,
  range: CapacityRangeInput | null | undefined,
): boolean {
  const required = Number(range?.required_bytes ?? 0);
  const limit = Number(range?.limit_bytes ?? 0);
  return sizeBytes >= required && (limit === 0 || sizeBytes <= limit);
}
