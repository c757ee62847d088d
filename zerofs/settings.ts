/**
 * A volume's settings: StorageClass parameters > ConfigMap keys > driver
 * defaults, resolved into one typed {@linkcode VolumeSettings}. The secret
 * plumbing lives in `secrets.ts`.
 *
 * Key names follow the original Go driver (jrcichra/zerofs-csi-driver) so its
 * ConfigMaps keep working. Settings carry only secret *references*; secret
 * values travel separately as {@linkcode SecretValues}.
 *
 * @module
 */

import { SettingsError } from "./types.ts";

// ---------------------------------------------------------------------------
// Keys

/** Keys a ConfigMap (or a StorageClass parameter) may set; each becomes a {@linkcode VolumeSettings} field. */
export const SETTINGS_KEYS: ReadonlySet<string> = new Set([
  "storageURL",
  "awsEndpoint",
  "awsDefaultRegion",
  "awsAllowHTTP",
  "awsCredentialsSecretName",
  "encryptionPasswordSecretName",
  "cacheDir",
  "cacheDiskSizeGB",
  "cacheMemorySizeGB",
  "zerofsImage",
  "cpuRequest",
  "cpuLimit",
  "memoryRequest",
  "memoryLimit",
  "rustLog",
  "podReadyTimeoutSeconds",
  "compression",
  "storageClass",
  "telemetry",
  "filesystemMaxSizeGB",
  "lsmL0MaxSsts",
  "lsmMaxConcurrentCompactions",
  "lsmFlushIntervalSecs",
  "envoyEnabled",
  "envoyImage",
  "envoyConfigMapRef",
]);

/**
 * Settings that choose what runs in the ZeroFS pod: only the ConfigMap (in
 * the driver namespace, written by the operator) may set them, never a
 * StorageClass parameter or a PV's volume attributes, which reach the node as
 * the volume context. The original driver read them from the ConfigMap too.
 */
export const CONFIGMAP_ONLY_KEYS: ReadonlySet<string> = new Set([
  "zerofsImage",
  "envoyEnabled",
  "envoyImage",
  "envoyConfigMapRef",
]);

/**
 * Keys of the original driver that this driver recognises but refuses:
 * `lsmMaxUnflushedGB` (ZeroFS 2.3 rejects `max_unflushed_gb`).
 */
const LEGACY_REFUSED_KEYS: ReadonlyMap<string, string> = new Map([
  ["lsmMaxUnflushedGB", "ZeroFS 2.3 has no [lsm] max_unflushed_gb; delete the key"],
]);

/** StorageClass parameters that are not settings (they never come from the ConfigMap). */
export const PARAMETER_ONLY_KEYS: ReadonlySet<string> = new Set([
  "filesystem",
  "configMapName",
  "deletePolicy",
  "preflight",
  "csi.storage.k8s.io/fstype",
  "csi.storage.k8s.io/pvc/name",
  "csi.storage.k8s.io/pvc/namespace",
  "csi.storage.k8s.io/pv/name",
]);

/** Every StorageClass parameter key CreateVolume accepts. */
export const VOLUME_PARAMETER_KEYS: ReadonlySet<string> = new Set([
  ...PARAMETER_ONLY_KEYS,
  ...SETTINGS_KEYS,
  ...LEGACY_REFUSED_KEYS.keys(),
]);

const CONFIGMAP_KEYS: ReadonlySet<string> = new Set([
  ...SETTINGS_KEYS,
  ...LEGACY_REFUSED_KEYS.keys(),
]);

// ---------------------------------------------------------------------------
// Types

/** `filesystem` parameter values. */
export type VolumeFilesystem = "ext4" | "xfs" | "btrfs";
/** What DeleteVolume does with the objects under the volume's prefix. */
export type DeletePolicy = "delete" | "retain";

/** One volume's resolved, validated settings. Contains no secret values. */
export interface VolumeSettings {
  /** Base URL; the volume lives at `<storageURL>/<volumeId>`. */
  storageURL: string;
  awsEndpoint?: string;
  awsDefaultRegion?: string;
  awsAllowHTTP: boolean;
  /** Secret (driver namespace) holding AWS credentials; see {@linkcode AWS_CREDENTIALS_SECRET_KEYS}. */
  awsCredentialsSecretName?: string;
  /** Secret (driver namespace) holding the encryption password under {@linkcode ENCRYPTION_PASSWORD_SECRET_KEY}. */
  encryptionPasswordSecretName?: string;
  /** Base directory for the ZeroFS disk cache; the runner picks the per-volume directory under it. */
  cacheDir: string;
  cacheDiskSizeGB: number;
  cacheMemorySizeGB: number;
  zerofsImage: string;
  /** Kubernetes resource quantities for the ZeroFS pod (pod runner only). */
  cpuRequest?: string;
  cpuLimit?: string;
  memoryRequest?: string;
  memoryLimit?: string;
  /** ZeroFS's `RUST_LOG`. */
  rustLog?: string;
  podReadyTimeoutSeconds: number;
  /** `[filesystem] compression`: `lz4` or `zstd-1` … `zstd-22`. */
  compression?: string;
  /** `[storage] storage_class` (the object store's class, e.g. `STANDARD_IA`). */
  storageClass?: string;
  /** `[telemetry] enabled`; ZeroFS's own default is on, ours is off. */
  telemetry: boolean;
  filesystemMaxSizeGB?: number;
  lsmL0MaxSsts?: number;
  lsmMaxConcurrentCompactions?: number;
  lsmFlushIntervalSecs?: number;
  /**
   * An Envoy sidecar in the ZeroFS pod (pod runner only; see README "Envoy
   * sidecar"). On only for `"true"` in any case, as in the original driver.
   */
  envoyEnabled: boolean;
  /** The sidecar's image. */
  envoyImage: string;
  /** ConfigMap (driver namespace) mounted at `/etc/envoy`; it must hold `envoy.yaml`. */
  envoyConfigMapRef: string;
}

/** StorageClass parameters that are not settings. */
export interface VolumeParameterOptions {
  filesystem?: VolumeFilesystem;
  configMapName?: string;
  deletePolicy: DeletePolicy;
  preflight: boolean;
}

/**
 * `storageURL` when nothing sets it: the original driver's default
 * (`cmp.Or(configMapData["storageURL"], "s3://zerofs")` in its pkg/csi/zerofs.go),
 * so its ConfigMaps, which often leave the key out, place volumes where it did.
 */
export const DEFAULT_STORAGE_URL = "s3://zerofs";

/** Driver defaults used when neither the StorageClass nor the ConfigMap sets a key. */
export const DEFAULT_SETTINGS: Readonly<Omit<VolumeSettings, "storageURL">> = {
  awsAllowHTTP: false,
  cacheDir: "/var/lib/zerofs-csi/cache",
  cacheDiskSizeGB: 1,
  cacheMemorySizeGB: 0.25,
  zerofsImage: "ghcr.io/barre/zerofs:0.16.2",
  podReadyTimeoutSeconds: 120,
  telemetry: false,
  envoyEnabled: false,
  envoyImage: "envoyproxy/envoy-distroless:v1.34.4",
  envoyConfigMapRef: "envoy-config",
};

// ---------------------------------------------------------------------------
// Value parsers: each takes the raw string and the key, returns a typed value or throws.

type Source = "StorageClass parameter" | "ConfigMap key" | "driver default";
type Parser<T> = (raw: string, where: string) => T;

const MAX_ECHO_CHARS = 80;

function echo(raw: string): string {
  const short = raw.length > MAX_ECHO_CHARS ? raw.slice(0, MAX_ECHO_CHARS) + "…" : raw;
  return JSON.stringify(short);
}

/** What every invalid-value message ends with: where to fix it. */
export const SETTINGS_FIX_HINT = "fix the StorageClass parameters or the ConfigMap";

function invalid(where: string, raw: string, expected: string): SettingsError {
  return new SettingsError(`invalid ${where} = ${echo(raw)}: ${expected}; ${SETTINGS_FIX_HINT}`);
}

/**
 * The spellings ZeroFS's object store accepts for a boolean (object_store
 * 0.12 `impl Parse for bool`, any case). The original driver copied
 * `awsAllowHTTP` into ZeroFS's `allow_http` as is, so its ConfigMaps may
 * use any of them.
 */
const TRUE_WORDS: ReadonlySet<string> = new Set(["1", "true", "on", "yes", "y"]);
const FALSE_WORDS: ReadonlySet<string> = new Set(["0", "false", "off", "no", "n"]);

const parseBoolean: Parser<boolean> = (raw, where) => {
  const word = raw.toLowerCase();
  if (TRUE_WORDS.has(word)) return true;
  if (FALSE_WORDS.has(word)) return false;
  throw invalid(where, raw, `must be "true" or "false" (or 1/0, yes/no, on/off, y/n)`);
};

const parsePositiveNumber: Parser<number> = (raw, where) => {
  const n = /^\s*\d+(\.\d+)?\s*$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isFinite(n) || n <= 0) {
    throw invalid(where, raw, `must be a positive number such as "10" or "0.5"`);
  }
  return n;
};

function integerAtLeast(min: number): Parser<number> {
  return (raw, where) => {
    const n = /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(n) || n < min) {
      throw invalid(where, raw, `must be a whole number ≥ ${min}`);
    }
    return n;
  };
}

const parseNonEmpty: Parser<string> = (raw, where) => {
  // deno-lint-ignore no-control-regex
  if (raw.trim() === "" || /[\u0000-\u001f\u007f]/.test(raw)) {
    throw invalid(where, raw, "must be a non-empty string without control characters");
  }
  return raw;
};

/** RFC 1123 subdomain: what Kubernetes accepts as a Secret or ConfigMap name. */
const parseObjectName: Parser<string> = (raw, where) => {
  if (
    raw.length > 253 ||
    !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(raw)
  ) {
    throw invalid(
      where,
      raw,
      "must be a Kubernetes object name (lowercase letters, digits, '-' and '.')",
    );
  }
  return raw;
};

const parseAbsolutePath: Parser<string> = (raw, where) => {
  if (!raw.startsWith("/") || raw.split("/").includes("..")) {
    throw invalid(where, raw, "must be an absolute path without '..'");
  }
  return parseNonEmpty(raw, where);
};

const parseQuantity: Parser<string> = (raw, where) => {
  if (!/^\d+(\.\d+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/.test(raw)) {
    throw invalid(where, raw, `must be a Kubernetes quantity such as "500m", "2" or "1Gi"`);
  }
  return raw;
};

const parseCompression: Parser<string> = (raw, where) => {
  const zstd = /^zstd-(\d{1,2})$/.exec(raw);
  if (raw === "lz4" || (zstd && Number(zstd[1]) >= 1 && Number(zstd[1]) <= 22)) return raw;
  throw invalid(where, raw, `must be "lz4" or "zstd-1" … "zstd-22"`);
};

const parseRegion: Parser<string> = (raw, where) => {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(raw)) {
    throw invalid(where, raw, `must be a region name such as "us-east-1"`);
  }
  return raw;
};

const parseImage: Parser<string> = (raw, where) => {
  if (!/^[A-Za-z0-9][A-Za-z0-9._\/:@-]*$/.test(raw)) {
    throw invalid(
      where,
      raw,
      `must be a container image reference such as "ghcr.io/barre/zerofs:0.16.2"`,
    );
  }
  return raw;
};

const parseEndpoint: Parser<string> = (raw, where) => {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalid(
      where,
      raw,
      `must be a URL such as "https://s3.example.com" or "http://minio:9000"`,
    );
  }
  if (url.username || url.password) {
    // Never echo: the value itself carries credentials.
    throw new SettingsError(
      `invalid ${where}: the URL contains credentials; put them in the Secret named by awsCredentialsSecretName`,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw invalid(where, raw, "must start with http:// or https://");
  }
  return raw.replace(/\/+$/, "");
};

/**
 * Schemes a volume may use: `s3://` (AWS S3 and S3-compatible stores), and
 * `memory://` for tests. ZeroFS also speaks `gs://` and `azure://`, but this
 * driver hands it only `[aws]` credentials and can delete only s3:// objects,
 * so such a volume could neither authenticate nor ever be deleted.
 */
export const STORAGE_SCHEMES: readonly string[] = ["s3", "memory"];
const UNSUPPORTED_ZEROFS_SCHEMES: ReadonlySet<string> = new Set(["gs", "azure"]);

const parseStorageUrl: Parser<string> = (raw, where) => {
  const m = /^([a-z0-9]+):\/\/([^/?#]*)(\/[^?#]*)?$/.exec(raw);
  if (!m) {
    throw invalid(where, raw, `must look like "s3://bucket/prefix" (no query string or fragment)`);
  }
  const [, scheme, bucket, path = ""] = m;
  if (!STORAGE_SCHEMES.includes(scheme)) {
    const why = scheme === "file"
      ? "file:// lacks the conditional writes ZeroFS needs; "
      : UNSUPPORTED_ZEROFS_SCHEMES.has(scheme)
      ? `${scheme}:// is not supported: this driver passes ZeroFS only AWS credentials and ` +
        `deletes only s3:// objects; `
      : "";
    throw invalid(
      where,
      raw,
      `${why}use one of the supported schemes: s3://, memory:// (for tests)`,
    );
  }
  if (scheme !== "memory" && bucket === "") throw invalid(where, raw, "names no bucket");
  if (bucket.includes("@")) {
    throw new SettingsError(
      `invalid ${where}: the URL contains credentials; use the Secret named by awsCredentialsSecretName`,
    );
  }
  const segments = path.split("/").filter((s) => s !== "");
  if (segments.some((s) => s === "." || s === "..") || /\s/.test(raw)) {
    throw invalid(where, raw, "the prefix must not contain '.', '..' segments or whitespace");
  }
  return `${scheme}://${bucket}${segments.length ? "/" + segments.join("/") : ""}`;
};

// ---------------------------------------------------------------------------
// Validation and resolution

function rejectLegacy(key: string, where: string): void {
  const refusal = LEGACY_REFUSED_KEYS.get(key);
  if (refusal) throw new SettingsError(`${where} is not supported: ${refusal}`);
}

function rejectOutsideConfigMap(key: string, where: string): void {
  throw new SettingsError(
    `${where} is not allowed: what runs in the ZeroFS pod is set only in the ConfigMap ` +
      `(key ${JSON.stringify(key)} of the ConfigMap named by configMapName); remove it here`,
  );
}

/**
 * `envoyEnabled` as the original driver read it (`strings.EqualFold(v, "true")`):
 * on only for "true" in any case; every other value, also "1" or "yes", means off,
 * so its ConfigMaps keep the meaning they had.
 */
const parseEnvoyEnabled: Parser<boolean> = (raw) => raw.toLowerCase() === "true";

/**
 * Parse one settings key's raw string into its typed value (the same rules
 * the ConfigMap and StorageClass parameters follow). Throws
 * {@linkcode SettingsError} naming `where` on a malformed value.
 *
 * @example
 * ```ts
 * parseSettingValue("awsAllowHTTP", "yes", `ConfigMap key "awsAllowHTTP"`); // → true
 * ```
 */
export function parseSettingValue(key: string, raw: string, where: string): unknown {
  switch (key) {
    case "storageURL":
      return parseStorageUrl(raw, where);
    case "awsEndpoint":
      return parseEndpoint(raw, where);
    case "awsDefaultRegion":
      return parseRegion(raw, where);
    case "awsAllowHTTP":
    case "telemetry":
      return parseBoolean(raw, where);
    case "envoyEnabled":
      return parseEnvoyEnabled(raw, where);
    case "envoyConfigMapRef":
    case "awsCredentialsSecretName":
    case "encryptionPasswordSecretName":
      return parseObjectName(raw, where);
    case "cacheDir":
      return parseAbsolutePath(raw, where);
    case "cacheDiskSizeGB":
    case "cacheMemorySizeGB":
    case "filesystemMaxSizeGB":
      return parsePositiveNumber(raw, where);
    case "zerofsImage":
    case "envoyImage":
      return parseImage(raw, where);
    case "cpuRequest":
    case "cpuLimit":
    case "memoryRequest":
    case "memoryLimit":
      return parseQuantity(raw, where);
    case "compression":
      return parseCompression(raw, where);
    case "podReadyTimeoutSeconds":
    case "lsmL0MaxSsts":
    case "lsmMaxConcurrentCompactions":
      return integerAtLeast(1)(raw, where);
    case "lsmFlushIntervalSecs":
      return integerAtLeast(5)(raw, where);
    default:
      return parseNonEmpty(raw, where);
  }
}

function parseParameterOnly(key: string, raw: string, where: string): void {
  switch (key) {
    case "filesystem":
    case "csi.storage.k8s.io/fstype":
      if (!["ext4", "xfs", "btrfs"].includes(raw)) {
        throw invalid(where, raw, `must be "ext4", "xfs" or "btrfs"`);
      }
      return;
    case "configMapName":
      parseObjectName(raw, where);
      return;
    case "deletePolicy":
      if (raw !== "delete" && raw !== "retain") {
        throw invalid(where, raw, `must be "delete" or "retain"`);
      }
      return;
    case "preflight":
      // Ours, not the original's: exactly what CreateVolume compares against.
      if (raw !== "true" && raw !== "false") {
        throw invalid(where, raw, `must be "true" or "false"`);
      }
      return;
  }
}

function unknownKey(key: string, source: Source, allowed: ReadonlySet<string>): SettingsError {
  return new SettingsError(
    `unknown ${source} ${JSON.stringify(key)}; allowed keys: ${[...allowed].sort().join(", ")}`,
  );
}

/**
 * Check StorageClass parameters (CreateVolume): every key known, every value
 * well-formed. Throws {@linkcode SettingsError} naming the first bad key.
 *
 * @example
 * ```ts
 * validateVolumeParameters({ storageURL: "s3://bucket/volumes", deletePolicy: "retain" });
 * ```
 */
export function validateVolumeParameters(params: Record<string, string>): void {
  for (const [key, raw] of Object.entries(params)) {
    const where = `StorageClass parameter "${key}"`;
    if (!VOLUME_PARAMETER_KEYS.has(key)) {
      throw unknownKey(key, "StorageClass parameter", VOLUME_PARAMETER_KEYS);
    }
    if (PARAMETER_ONLY_KEYS.has(key)) parseParameterOnly(key, raw, where);
    else if (raw === "") continue; // unset, as in the original driver
    else if (CONFIGMAP_ONLY_KEYS.has(key)) rejectOutsideConfigMap(key, where);
    else if (SETTINGS_KEYS.has(key)) parseSettingValue(key, raw, where);
    else rejectLegacy(key, where);
  }
}

/** The non-settings StorageClass parameters, validated, with defaults (`deletePolicy: delete`, `preflight: false`). */
export function volumeParameterOptions(params: Record<string, string>): VolumeParameterOptions {
  const pick = (key: string) => {
    const raw = params[key];
    if (raw !== undefined) parseParameterOnly(key, raw, `StorageClass parameter "${key}"`);
    return raw;
  };
  const filesystem = (pick("filesystem") ?? pick("csi.storage.k8s.io/fstype")) as
    | VolumeFilesystem
    | undefined;
  return {
    ...(filesystem ? { filesystem } : {}),
    ...(pick("configMapName") ? { configMapName: params.configMapName } : {}),
    deletePolicy: (pick("deletePolicy") ?? "delete") as DeletePolicy,
    preflight: pick("preflight") === "true",
  };
}

/** Inputs of {@linkcode resolveSettings}. */
export interface ResolveSettingsInput {
  /** StorageClass parameters (or the volume context). Non-settings keys are skipped here; validate them with {@linkcode validateVolumeParameters}. */
  parameters: Record<string, string>;
  /** Data of the ConfigMap named by `configMapName`; every key must be known. */
  configMap?: Record<string, string>;
  /** Driver defaults (e.g. from flags), over {@linkcode DEFAULT_SETTINGS}. */
  defaults?: Partial<VolumeSettings>;
}

function collectRaw(input: ResolveSettingsInput): Map<string, { raw: string; where: string }> {
  const merged = new Map<string, { raw: string; where: string }>();
  for (const [key, raw] of Object.entries(input.configMap ?? {})) {
    if (!CONFIGMAP_KEYS.has(key)) throw unknownKey(key, "ConfigMap key", CONFIGMAP_KEYS);
    const where = `ConfigMap key "${key}"`;
    if (raw === "") continue; // unset, as in the original driver
    if (SETTINGS_KEYS.has(key)) merged.set(key, { raw, where });
    else rejectLegacy(key, where);
  }
  for (const [key, raw] of Object.entries(input.parameters)) {
    const where = `StorageClass parameter "${key}"`;
    if (raw === "") continue; // unset, as in the original driver
    if (CONFIGMAP_ONLY_KEYS.has(key)) rejectOutsideConfigMap(key, where);
    else if (SETTINGS_KEYS.has(key)) merged.set(key, { raw, where });
    else if (!PARAMETER_ONLY_KEYS.has(key) && VOLUME_PARAMETER_KEYS.has(key)) {
      rejectLegacy(key, where);
    }
  }
  return merged;
}

/**
 * Resolve one volume's settings: StorageClass parameters > ConfigMap keys >
 * `defaults` > {@linkcode DEFAULT_SETTINGS} (and {@linkcode DEFAULT_STORAGE_URL}).
 * A key set to the empty string counts as unset, as in the original driver.
 * Throws {@linkcode SettingsError} naming the key on an unknown ConfigMap
 * key or a malformed value.
 *
 * @example
 * ```ts
 * const settings = resolveSettings({
 *   parameters: { configMapName: "zerofs", cacheDiskSizeGB: "20" },
 *   configMap: { storageURL: "s3://bucket/volumes", awsCredentialsSecretName: "aws" },
 * });
 * ```
 */
export function resolveSettings(input: ResolveSettingsInput): VolumeSettings {
  const parsed: Record<string, unknown> = {};
  for (const [key, { raw, where }] of collectRaw(input)) {
    parsed[key] = parseSettingValue(key, raw, where);
  }
  const settings = {
    storageURL: DEFAULT_STORAGE_URL,
    ...DEFAULT_SETTINGS,
    ...input.defaults,
    ...parsed,
  } as VolumeSettings;
  if (!settings.storageURL) settings.storageURL = DEFAULT_STORAGE_URL;
  if (input.defaults?.storageURL && !("storageURL" in parsed)) {
    settings.storageURL = parseStorageUrl(input.defaults.storageURL, `driver default "storageURL"`);
  }
  return settings;
}

// ---------------------------------------------------------------------------
// Location

/** Where one volume's objects live. */
export interface VolumeLocation {
  /** `<storageURL>/<volumeId>`: ZeroFS's `[storage] url`, same as the original driver. */
  url: string;
  scheme: string;
  /** Bucket (container) name; empty for `memory://`. */
  bucket: string;
  /** Key prefix of the volume's objects, always ending in `<volumeId>/`. */
  prefix: string;
}

/**
 * The object-store location of `volumeId` under `settings.storageURL`.
 *
 * @example
 * ```ts
 * resolveVolumeLocation({ storageURL: "s3://b/base" } as VolumeSettings, "pvc-1");
 * // → { url: "s3://b/base/pvc-1", scheme: "s3", bucket: "b", prefix: "base/pvc-1/" }
 * ```
 */
export function resolveVolumeLocation(
  settings: Pick<VolumeSettings, "storageURL">,
  volumeId: string,
): VolumeLocation {
  if (volumeId === "" || volumeId.includes("/")) {
    throw new SettingsError(
      `cannot place volume ${
        JSON.stringify(volumeId)
      }: a volume ID must be non-empty and contain no '/'`,
    );
  }
  const base = parseStorageUrl(settings.storageURL, `setting "storageURL"`);
  const [, scheme, rest] = /^([a-z0-9]+):\/\/(.*)$/.exec(base)!;
  const slash = rest.indexOf("/");
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  const basePrefix = slash < 0 ? "" : rest.slice(slash + 1);
  return {
    url: `${base}/${volumeId}`,
    scheme,
    bucket,
    prefix: basePrefix ? `${basePrefix}/${volumeId}/` : `${volumeId}/`,
  };
}
