/**
 * Which ZeroFS release runs a volume, what that release can do, and whether
 * it may open a volume another release formatted.
 *
 * ZeroFS's on-disk format has two families: releases before 2.0.0, and 2.x
 * (2.0.0 replaced the storage engine; a 2.x server refuses a volume an
 * earlier release wrote, and there is no migration). A volume is pinned to
 * the family that formatted it, and never handed to an older release than the
 * newest one that served it: an older storage engine may not read what a
 * newer one wrote.
 *
 * @module
 */

import { runTool } from "../blockdev/mod.ts";
import { SettingsError } from "./types.ts";

/** A ZeroFS release number. */
export interface ZeroFsVersion {
  major: number;
  minor: number;
  patch: number;
}

/** What a release's config file and command line accept (from ZeroFS's history). */
export interface ZeroFsFeatures {
  /** `run --read-only` readers (0.17.0). */
  readOnlyServer: boolean;
  /** `[filesystem] max_size_gb` and the `[lsm]` table (0.17.0). */
  tuningTables: boolean;
  /** `[filesystem] compression` (present in 2.x; absent through 0.19). */
  compression: boolean;
  /** `[servers.rpc]`, `zerofs flush`, checkpoints (0.18.0). */
  rpcServer: boolean;
  /** `[telemetry]` table (1.0.7). */
  telemetryTable: boolean;
  /** `[storage] storage_class`. */
  storageClass: boolean;
}

const VERSION_TEXT = /^(\d+)\.(\d+)\.(\d+)$/;
const VERSION_TIMEOUT_MS = 10_000;

/** `"0.16.2"` → version; anything else (a `v` prefix, pre-release suffix, garbage) → null. */
export function parseZeroFsVersion(text: string): ZeroFsVersion | null {
  const m = VERSION_TEXT.exec(text.trim());
  if (!m) return null;
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]) };
}

/** `0.16.2` */
export function formatZeroFsVersion(v: ZeroFsVersion): string {
  return `${v.major}.${v.minor}.${v.patch}`;
}

/** Negative, zero or positive as `a` is older than, equal to or newer than `b`. */
export function compareZeroFsVersions(a: ZeroFsVersion, b: ZeroFsVersion): number {
  return a.major - b.major || a.minor - b.minor || a.patch - b.patch;
}

function atLeast(v: ZeroFsVersion, text: string): boolean {
  return compareZeroFsVersions(v, parseZeroFsVersion(text)!) >= 0;
}

/** The on-disk family: `"0.x"` before 2.0.0 (1.x shares that engine), `"2.x"` from 2.0.0 on. */
export function storageFamily(v: ZeroFsVersion): "0.x" | "2.x" {
  return v.major >= 2 ? "2.x" : "0.x";
}

/** What this release accepts. */
export function zerofsFeatures(v: ZeroFsVersion): ZeroFsFeatures {
  return {
    readOnlyServer: atLeast(v, "0.17.0"),
    tuningTables: atLeast(v, "0.17.0"),
    compression: atLeast(v, "2.0.0"),
    rpcServer: atLeast(v, "0.18.0"),
    telemetryTable: atLeast(v, "1.0.7"),
    storageClass: atLeast(v, "2.0.0"),
  };
}

/**
 * Why `runner` must not open a volume last served by `servedBy`, or null when
 * it may. The message names both releases and what to do.
 */
export function incompatibilityReason(
  servedBy: ZeroFsVersion,
  runner: ZeroFsVersion,
): string | null {
  const had = formatZeroFsVersion(servedBy);
  const has = formatZeroFsVersion(runner);
  if (storageFamily(servedBy) !== storageFamily(runner)) {
    return `its data was written by ZeroFS ${had} (storage family ${storageFamily(servedBy)}) ` +
      `and this node would run ZeroFS ${has} (family ${storageFamily(runner)}), which cannot ` +
      `open it; ZeroFS has no migration between the two: serve this volume with a ` +
      `${storageFamily(servedBy)} release (ConfigMap key zerofsImage, or the node's --zerofs-bin)`;
  }
  if (compareZeroFsVersions(runner, servedBy) < 0) {
    return `its data was last served by ZeroFS ${had} and this node would run the older ` +
      `ZeroFS ${has}; an older release may not read what a newer one wrote: serve it with ` +
      `ZeroFS ${had} or newer`;
  }
  return null;
}

/**
 * The release of a ZeroFS binary, from `zerofs --version` (`zerofs 0.16.2`).
 * Throws {@linkcode SettingsError} (precondition) when it prints no version.
 */
export async function detectBinaryVersion(bin: string): Promise<ZeroFsVersion> {
  const result = await runTool(bin, ["--version"], { timeoutMs: VERSION_TIMEOUT_MS });
  const word = result.stdout.trim().split(/\s+/).pop() ?? "";
  const version = parseZeroFsVersion(word);
  if (!version) {
    throw new SettingsError(
      `cannot tell which ZeroFS release "${bin}" is: \`${bin} --version\` printed ` +
        `${JSON.stringify(result.stdout.trim().slice(0, 80))}; install a released ZeroFS`,
      "precondition",
    );
  }
  return version;
}

/**
 * The release an image runs, from its tag (`ghcr.io/barre/zerofs:0.16.2`,
 * optionally `@sha256:…` after the tag). Throws {@linkcode SettingsError}
 * naming `zerofsImage` when the tag is not a release number: the driver
 * must know the release to render its config and to protect the volume.
 */
export function imageVersion(image: string): ZeroFsVersion {
  const withoutDigest = image.split("@")[0];
  const lastSlash = withoutDigest.lastIndexOf("/");
  const colon = withoutDigest.indexOf(":", lastSlash + 1);
  const tag = colon >= 0 ? withoutDigest.slice(colon + 1) : "";
  const version = parseZeroFsVersion(tag.replace(/^v/, ""));
  if (!version) {
    throw new SettingsError(
      `zerofsImage ${JSON.stringify(image)} has no release tag; the driver must know the ` +
        `ZeroFS release to render its config: use a tag such as ":0.16.2" ` +
        `(a digest may follow: ":0.16.2@sha256:…")`,
    );
  }
  return version;
}
