/**
 * A volume's settings: one table, {@linkcode SETTINGS}, names every key once
 * with how its raw string is read (the parsers are in `setting_parsers.ts`),
 * its default, and whether only the ConfigMap may set it. Resolution
 * (StorageClass parameters > ConfigMap keys > driver defaults), the key lists
 * and the messages all derive from it, and so does the type
 * {@linkcode VolumeSettings}. The StorageClass parameters that are not
 * settings have their own table, {@linkcode PARAMETERS}. A key no table
 * knows is refused, naming the key, where it was read and the accepted keys.
 * The secret plumbing lives in `secrets.ts`.
 *
 * Key names follow the original Go driver (jrcichra/zerofs-csi-driver) so its
 * ConfigMaps keep working. Settings carry only secret *references*; secret
 * values travel separately as `SecretValues`.
 *
 * @module
 */

import {
  integerAtLeast,
  oneOf,
  parseAbsolutePath,
  parseBoolean,
  parseCompression,
  parseEndpoint,
  parseEqualFoldTrue,
  parseImage,
  parseNonEmpty,
  parseObjectName,
  parsePositiveNumber,
  parseQuantity,
  type Parser,
  parseRegion,
  parseStorageUrl,
  parseStrictBoolean,
  parseText,
} from "./setting_parsers.ts";
import { SettingsError } from "./types.ts";

export { SETTINGS_FIX_HINT, STORAGE_SCHEMES } from "./setting_parsers.ts";

// ---------------------------------------------------------------------------
// The shape of a table

/** One key: how its raw string is read, and whether only the ConfigMap may set it. */
interface Setting<T> {
  readonly parse: Parser<T>;
  /** It chooses what runs in the ZeroFS pod: set by the operator's ConfigMap only. */
  readonly configMapOnly: boolean;
}

/** A key with a value when nothing sets it. */
interface DefaultedSetting<T> extends Setting<T> {
  readonly default: T;
}

type Table = Readonly<Record<string, Setting<unknown>>>;

function optional<T>(parse: Parser<T>): Setting<T> {
  return { parse, configMapOnly: false };
}

function withDefault<T>(parse: Parser<T>, value: NoInfer<T>): DefaultedSetting<T> {
  return { parse, configMapOnly: false, default: value };
}

function configMapOnly<S extends Setting<unknown>>(setting: S): S {
  return { ...setting, configMapOnly: true };
}

type ValueOf<S> = S extends Setting<infer T> ? T : never;
type Flatten<T> = { [K in keyof T]: T[K] };

/** The typed values a table resolves to: keys with a default always set, the others optional. */
type Values<T extends Table> = Flatten<
  & { [K in keyof T as T[K] extends DefaultedSetting<unknown> ? K : never]: ValueOf<T[K]> }
  & { [K in keyof T as T[K] extends DefaultedSetting<unknown> ? never : K]?: ValueOf<T[K]> }
>;

function defaultsOf<T extends Table>(table: T): Partial<Values<T>> {
  return Object.fromEntries(
    Object.entries(table).flatMap(([key, s]) => "default" in s ? [[key, s.default]] : []),
  ) as Partial<Values<T>>;
}

// ---------------------------------------------------------------------------
// The settings table

/**
 * `storageURL` when nothing sets it: the original driver's default
 * (`cmp.Or(configMapData["storageURL"], "s3://zerofs")` in its pkg/csi/zerofs.go),
 * so its ConfigMaps, which often leave the key out, place volumes where it did.
 */
export const DEFAULT_STORAGE_URL = "s3://zerofs";

/**
 * Every settings key: a ConfigMap key, and (unless ConfigMap-only) a
 * StorageClass parameter. Each becomes a {@linkcode VolumeSettings} field.
 */
export const SETTINGS = {
  /** Base URL; the volume lives at `<storageURL>/<volumeId>`. */
  storageURL: withDefault(parseStorageUrl, DEFAULT_STORAGE_URL),
  awsEndpoint: optional(parseEndpoint),
  awsDefaultRegion: optional(parseRegion),
  awsAllowHTTP: withDefault(parseBoolean, false),
  /** Secret (driver namespace) holding AWS credentials; see `AWS_CREDENTIALS_SECRET_KEYS`. */
  awsCredentialsSecretName: optional(parseObjectName),
  /** Secret (driver namespace) holding the encryption password under `ENCRYPTION_PASSWORD_SECRET_KEY`. */
  encryptionPasswordSecretName: optional(parseObjectName),
  /** Base directory for the ZeroFS disk cache; the runner picks the per-volume directory under it. */
  cacheDir: withDefault(parseAbsolutePath, "/var/lib/zerofs-csi/cache"),
  cacheDiskSizeGB: withDefault(parsePositiveNumber, 1),
  cacheMemorySizeGB: withDefault(parsePositiveNumber, 0.25),
  zerofsImage: configMapOnly(withDefault(parseImage, "ghcr.io/barre/zerofs:0.16.2")),
  /** Kubernetes resource quantities for the ZeroFS pod (pod runner only). */
  cpuRequest: optional(parseQuantity),
  cpuLimit: optional(parseQuantity),
  memoryRequest: optional(parseQuantity),
  memoryLimit: optional(parseQuantity),
  /** ZeroFS's `RUST_LOG`. */
  rustLog: optional(parseNonEmpty),
  podReadyTimeoutSeconds: withDefault(integerAtLeast(1), 120),
  /** `[filesystem] compression`: `lz4` or `zstd-1` … `zstd-22`. */
  compression: optional(parseCompression),
  /** `[storage] storage_class` (the object store's class, e.g. `STANDARD_IA`). */
  storageClass: optional(parseNonEmpty),
  /** `[telemetry] enabled`; ZeroFS's own default is on, ours is off. */
  telemetry: withDefault(parseBoolean, false),
  filesystemMaxSizeGB: optional(parsePositiveNumber),
  lsmL0MaxSsts: optional(integerAtLeast(1)),
  lsmMaxConcurrentCompactions: optional(integerAtLeast(1)),
  lsmFlushIntervalSecs: optional(integerAtLeast(5)),
  /**
   * An Envoy sidecar in the ZeroFS pod (pod runner only; see README "Envoy
   * sidecar"). On only for `"true"` in any case, as in the original driver.
   */
  envoyEnabled: configMapOnly(withDefault(parseEqualFoldTrue, false)),
  /** The sidecar's image. */
  envoyImage: configMapOnly(withDefault(parseImage, "envoyproxy/envoy-distroless:v1.34.4")),
  /** ConfigMap (driver namespace) mounted at `/etc/envoy`; it must hold `envoy.yaml`. */
  envoyConfigMapRef: configMapOnly(withDefault(parseObjectName, "envoy-config")),
} satisfies Table;

/** One of the {@linkcode SETTINGS} keys. */
export type SettingKey = keyof typeof SETTINGS;

/** One volume's resolved, validated settings. Contains no secret values. */
export type VolumeSettings = Values<typeof SETTINGS>;

/**
 * Keys of the original driver that this driver recognises but refuses, with
 * why: `lsmMaxUnflushedGB` (ZeroFS 2.3 rejects `max_unflushed_gb`).
 */
const REFUSED_KEYS: ReadonlyMap<string, string> = new Map([
  ["lsmMaxUnflushedGB", "ZeroFS 2.3 has no [lsm] max_unflushed_gb; delete the key"],
]);

/** Driver defaults used when neither the StorageClass nor the ConfigMap sets a key. */
export const DEFAULT_SETTINGS = defaultsOf(SETTINGS) as Readonly<VolumeSettings>;

// ---------------------------------------------------------------------------
// The StorageClass parameters that are not settings

const FILESYSTEMS = ["ext4", "xfs", "btrfs"] as const;
/** `filesystem` parameter values. */
export type VolumeFilesystem = (typeof FILESYSTEMS)[number];
const parseFilesystem = oneOf(FILESYSTEMS);

/** StorageClass parameters of this driver that are not settings (never from a ConfigMap). */
export const PARAMETERS = {
  /** The filesystem to format (the original driver's key). */
  filesystem: optional(parseFilesystem),
  /** ConfigMap (driver namespace) with the volume's settings. */
  configMapName: optional(parseObjectName),
  /** What DeleteVolume does with the objects under the volume's prefix. */
  deletePolicy: withDefault(oneOf(["delete", "retain"]), "delete"),
  /** CreateVolume checks the object store first (ours, not the original's). */
  preflight: withDefault(parseStrictBoolean, true),
} satisfies Table;

/**
 * StorageClass parameters the external-provisioner adds: the filesystem of
 * `csi.storage.k8s.io/fstype` (older provisioners) and, with
 * `--extra-create-metadata`, the PVC's and the PV's names.
 */
/** The PVC's name and namespace, as the external-provisioner's `--extra-create-metadata` adds them. */
export const PVC_NAME_PARAMETER = "csi.storage.k8s.io/pvc/name";
export const PVC_NAMESPACE_PARAMETER = "csi.storage.k8s.io/pvc/namespace";

export const PROVISIONER_PARAMETERS = {
  "csi.storage.k8s.io/fstype": optional(parseFilesystem),
  [PVC_NAME_PARAMETER]: optional(parseText),
  [PVC_NAMESPACE_PARAMETER]: optional(parseText),
  "csi.storage.k8s.io/pv/name": optional(parseText),
} satisfies Table;

/** What DeleteVolume does with the objects under the volume's prefix. */
export type DeletePolicy = ReturnType<typeof PARAMETERS.deletePolicy.parse>;

/** The non-settings StorageClass parameters, read. */
export type VolumeParameterOptions = Values<typeof PARAMETERS>;

// ---------------------------------------------------------------------------
// Key lists

/** Keys a ConfigMap may set. */
export const SETTINGS_KEYS: ReadonlySet<string> = new Set(Object.keys(SETTINGS));

/** Every StorageClass parameter key CreateVolume accepts. */
export const VOLUME_PARAMETER_KEYS: ReadonlySet<string> = new Set([
  ...Object.keys(PARAMETERS),
  ...Object.keys(PROVISIONER_PARAMETERS),
  ...Object.entries(SETTINGS).flatMap(([key, s]) => s.configMapOnly ? [] : [key]),
]);

const NOT_SETTINGS: ReadonlySet<string> = new Set([
  ...Object.keys(PARAMETERS),
  ...Object.keys(PROVISIONER_PARAMETERS),
]);

// ---------------------------------------------------------------------------
// Sources

/**
 * Where raw settings were read, as every message names it: CreateVolume's
 * StorageClass parameters, a node's volume context (the PV's
 * volumeAttributes, without the keys the CSI layer adds), a ConfigMap, or
 * the defaults of a settings file.
 */
export type SettingsSource =
  | { kind: "StorageClass" }
  | { kind: "volume_context" }
  | { kind: "ConfigMap"; name?: string }
  | { kind: "settings file"; path?: string };

const STORAGE_CLASS: SettingsSource = { kind: "StorageClass" };

function keyWhere(source: SettingsSource, key: string): string {
  const quoted = JSON.stringify(key);
  switch (source.kind) {
    case "StorageClass":
      return `StorageClass parameter ${quoted}`;
    case "volume_context":
      return `volume_context key ${quoted}`;
    case "ConfigMap":
      return `ConfigMap key ${quoted}` + (source.name ? ` (ConfigMap "${source.name}")` : "");
    case "settings file":
      return `settings file key ${quoted}` + (source.path ? ` (${source.path})` : "");
  }
}

function isParameters(source: SettingsSource): boolean {
  return source.kind === "StorageClass" || source.kind === "volume_context";
}

function refuseKey(source: SettingsSource, key: string): SettingsError {
  const where = keyWhere(source, key);
  const refusal = REFUSED_KEYS.get(key);
  if (refusal) return new SettingsError(`${where} is not supported: ${refusal}`);
  const accepted = isParameters(source) ? VOLUME_PARAMETER_KEYS : SETTINGS_KEYS;
  return new SettingsError(`unknown ${where}; accepted keys: ${[...accepted].sort().join(", ")}`);
}

function refuseOutsideConfigMap(source: SettingsSource, key: string): SettingsError {
  return new SettingsError(
    `${keyWhere(source, key)} is not allowed: what runs in the ZeroFS pod is set only in the ` +
      `ConfigMap (key ${JSON.stringify(key)} of the ConfigMap named by configMapName); ` +
      `remove it here`,
  );
}

function settingOf(key: string): Setting<unknown> | undefined {
  return Object.hasOwn(SETTINGS, key) ? SETTINGS[key as SettingKey] : undefined;
}

// ---------------------------------------------------------------------------
// Reading

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
export function parseSettingValue<K extends SettingKey>(
  key: K,
  raw: string,
  where: string,
): VolumeSettings[K] {
  const setting = settingOf(key);
  if (!setting) throw new SettingsError(`unknown setting ${JSON.stringify(key)}`);
  return setting.parse(raw, where) as VolumeSettings[K];
}

/**
 * The settings `data` (read from `source`) sets, parsed. A key set to `""`
 * counts as unset, as in the original driver. From StorageClass parameters
 * or a volume context, the non-settings parameters are skipped (see
 * {@linkcode validateVolumeParameters}) and ConfigMap-only keys refused.
 * Throws {@linkcode SettingsError} naming the key and the source on an
 * unknown key or a malformed value.
 *
 * @example
 * ```ts
 * parseSettings({ cacheDiskSizeGB: "20" }, { kind: "ConfigMap", name: "zerofs" });
 * // → { cacheDiskSizeGB: 20 }
 * ```
 */
export function parseSettings(
  data: Record<string, string>,
  source: SettingsSource,
): Partial<VolumeSettings> {
  const parameters = isParameters(source);
  const parsed: Record<string, unknown> = {};
  for (const [key, raw] of Object.entries(data)) {
    if (parameters && NOT_SETTINGS.has(key)) continue;
    const setting = settingOf(key);
    if (!setting) throw refuseKey(source, key);
    if (raw === "") continue;
    if (parameters && setting.configMapOnly) throw refuseOutsideConfigMap(source, key);
    parsed[key] = setting.parse(raw, keyWhere(source, key));
  }
  return parsed as Partial<VolumeSettings>;
}

function parsePresent<T extends Table>(table: T, data: Record<string, string>): Partial<Values<T>> {
  const parsed: Record<string, unknown> = {};
  for (const [key, setting] of Object.entries(table)) {
    const raw = data[key];
    if (raw !== undefined) parsed[key] = setting.parse(raw, keyWhere(STORAGE_CLASS, key));
  }
  return parsed as Partial<Values<T>>;
}

/** The non-settings StorageClass parameters, validated, with defaults (`deletePolicy: delete`, `preflight: true`). */
export function volumeParameterOptions(params: Record<string, string>): VolumeParameterOptions {
  const own = parsePresent(PARAMETERS, params);
  const filesystem = own.filesystem ??
    parsePresent(PROVISIONER_PARAMETERS, params)["csi.storage.k8s.io/fstype"];
  return {
    ...defaultsOf(PARAMETERS),
    ...own,
    ...(filesystem ? { filesystem } : {}),
  } as VolumeParameterOptions;
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
  parseSettings(params, STORAGE_CLASS);
  volumeParameterOptions(params);
}

/** Inputs of {@linkcode resolveSettings}. */
export interface ResolveSettingsInput {
  /** StorageClass parameters; non-settings parameters are skipped here (see {@linkcode validateVolumeParameters}). */
  parameters: Record<string, string>;
  /** Where `parameters` were read (messages say so): `StorageClass` (default) or a node's `volume_context`. */
  parametersFrom?: "StorageClass" | "volume_context";
  /** Data of the ConfigMap named by `configMapName`; every key must be a settings key. */
  configMap?: Record<string, string>;
  /** The ConfigMap's name, for messages. */
  configMapName?: string;
  /** Driver defaults (e.g. a settings file's, see {@linkcode parseSettings}), over {@linkcode DEFAULT_SETTINGS}. */
  defaults?: Partial<VolumeSettings>;
}

/**
 * Resolve one volume's settings: StorageClass parameters > ConfigMap keys >
 * `defaults` > {@linkcode DEFAULT_SETTINGS}. Throws {@linkcode SettingsError}
 * naming the key and where it was read on an unknown key or a malformed
 * value (see {@linkcode parseSettings}).
 *
 * @example
 * ```ts
 * const settings = resolveSettings({
 *   parameters: { configMapName: "zerofs", cacheDiskSizeGB: "20" },
 *   configMap: { storageURL: "s3://bucket/volumes", awsCredentialsSecretName: "aws" },
 *   configMapName: "zerofs",
 * });
 * ```
 */
export function resolveSettings(input: ResolveSettingsInput): VolumeSettings {
  const fromConfigMap = parseSettings(input.configMap ?? {}, {
    kind: "ConfigMap",
    name: input.configMapName,
  });
  const fromParameters = parseSettings(input.parameters, {
    kind: input.parametersFrom ?? "StorageClass",
  });
  const defaults: Record<string, unknown> = Object.fromEntries(
    Object.entries(input.defaults ?? {}).filter(([, v]) => v !== undefined && v !== ""),
  );
  if (typeof defaults.storageURL === "string") {
    defaults.storageURL = parseStorageUrl(defaults.storageURL, `driver default "storageURL"`);
  }
  return {
    ...DEFAULT_SETTINGS,
    ...defaults,
    ...fromConfigMap,
    ...fromParameters,
  } as VolumeSettings;
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
