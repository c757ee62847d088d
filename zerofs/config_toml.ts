/**
 * Render a volume's ZeroFS `config.toml` for the release that will run it.
 *
 * Every release refuses unknown keys, and each added tables over time (see
 * {@linkcode zerofsFeatures}): a setting the release lacks is refused with the
 * key and both releases named, never silently dropped or rendered into a
 * file the release would reject at start.
 *
 * The output is deterministic (same input → same bytes), so a hash of it says
 * whether a running instance has the wanted configuration. It never contains
 * a secret value: secrets are `${VAR}` references that ZeroFS expands from its
 * environment (see {@linkcode secretEnv}).
 *
 * @module
 */

import { resolveVolumeLocation, type VolumeSettings } from "./settings.ts";
import { SettingsError } from "./types.ts";
import {
  formatZeroFsVersion,
  type ZeroFsFeatures,
  zerofsFeatures,
  type ZeroFsVersion,
} from "./version.ts";
import {
  ENV_AWS_ACCESS_KEY_ID,
  ENV_AWS_SECRET_ACCESS_KEY,
  ENV_AWS_SESSION_TOKEN,
  ENV_ENCRYPTION_PASSWORD,
} from "./secrets.ts";

/** Where this instance listens and caches; the runner decides these paths. */
export interface RenderConfigOptions {
  volumeId: string;
  /** The ZeroFS release that will read this file. */
  version: ZeroFsVersion;
  /** 9P unix socket as ZeroFS sees it (pod mode: the container path). */
  ninepSocket: string;
  /** NBD unix socket as ZeroFS sees it. */
  nbdSocket: string;
  /** This volume's cache directory as ZeroFS sees it. */
  cacheDir: string;
  /** Noted in the header only: ZeroFS takes `--read-only` on its command line, not in the file. */
  readOnly?: boolean;
  /** Add an RPC listener (`zerofs flush`/`checkpoint`) on this unix socket. */
  rpcSocket?: string;
  /**
   * Environment variable names the instance will be given (the keys of
   * `secretEnv(values)`); `[aws]` credential references are emitted only for
   * these. Default: the AWS key pair when `awsCredentialsSecretName` is set.
   */
  secretEnvNames?: readonly string[];
}

/** ZeroFS's `${VAR}` reference syntax; emitted verbatim, never `$`-escaped. */
function envReference(name: string): string {
  return `"\${${name}}"`;
}

const SHORT_ESCAPES: Readonly<Record<string, string>> = {
  '"': '\\"',
  "\\": "\\\\",
  "\b": "\\b",
  "\t": "\\t",
  "\n": "\\n",
  "\f": "\\f",
  "\r": "\\r",
};

/** A TOML basic string: quotes, backslashes and every control character escaped. */
export function tomlBasicString(value: string): string {
  const escaped = value.replace(
    // deno-lint-ignore no-control-regex
    /["\\\u0000-\u001f\u007f]/g,
    (c) => SHORT_ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}`,
  );
  return `"${escaped}"`;
}

/** A string in a field ZeroFS expands: a literal `$` becomes `$$` before TOML escaping. */
export function tomlExpandedString(value: string): string {
  return tomlBasicString(value.replaceAll("$", "$$$$"));
}

/** TOML float: always with a fraction or exponent, because ZeroFS reads these fields as f64. */
function tomlFloat(value: number, field: string): string {
  if (!Number.isFinite(value)) {
    throw new RangeError(`cannot render ${field}: ${value} is not a finite number`);
  }
  const text = String(value);
  return /[.eE]/.test(text) ? text : `${text}.0`;
}

function tomlInteger(value: number, field: string): string {
  if (!Number.isSafeInteger(value)) {
    throw new RangeError(`cannot render ${field}: ${value} is not an integer`);
  }
  return String(value);
}

type Line = [key: string, tomlValue: string];

function table(name: string, lines: (Line | undefined)[]): string[] {
  const present = lines.filter((l): l is Line => l !== undefined);
  return present.length === 0 ? [] : [`[${name}]`, ...present.map(([k, v]) => `${k} = ${v}`), ""];
}

function optional<T>(
  value: T | undefined,
  key: string,
  render: (v: T) => string,
): Line | undefined {
  return value === undefined ? undefined : [key, render(value)];
}

function awsTable(settings: VolumeSettings, envNames: ReadonlySet<string>): string[] {
  return table("aws", [
    optional(settings.awsEndpoint, "endpoint", tomlExpandedString),
    optional(settings.awsDefaultRegion, "default_region", tomlExpandedString),
    settings.awsAllowHTTP ? ["allow_http", tomlBasicString("true")] : undefined,
    envNames.has(ENV_AWS_ACCESS_KEY_ID)
      ? ["access_key_id", envReference(ENV_AWS_ACCESS_KEY_ID)]
      : undefined,
    envNames.has(ENV_AWS_SECRET_ACCESS_KEY)
      ? ["secret_access_key", envReference(ENV_AWS_SECRET_ACCESS_KEY)]
      : undefined,
    envNames.has(ENV_AWS_SESSION_TOKEN)
      ? ["session_token", envReference(ENV_AWS_SESSION_TOKEN)]
      : undefined,
  ]);
}

/**
 * Unix sockets only. `addresses = []` is explicit: before 0.17 a missing
 * `addresses` means a TCP listener on 127.0.0.1 (5564 for 9P, 10809 for NBD),
 * an unauthenticated door to the volume that a second volume would fight over.
 */
function serverTables(opts: RenderConfigOptions, features: ZeroFsFeatures): string[] {
  const unixOnly = (path: string): Line[] => [
    ["addresses", "[]"],
    ["unix_socket", tomlExpandedString(path)],
  ];
  if (opts.rpcSocket && !features.rpcServer) {
    throw new SettingsError(
      `ZeroFS ${formatZeroFsVersion(opts.version)} has no RPC listener (added in 0.18.0)`,
      "precondition",
    );
  }
  return [
    ...table("servers.ninep", unixOnly(opts.ninepSocket)),
    ...table("servers.nbd", unixOnly(opts.nbdSocket)),
    ...(opts.rpcSocket ? table("servers.rpc", unixOnly(opts.rpcSocket)) : []),
  ];
}

/** A setting the release cannot take: refused, naming the key and the release that added it. */
function requireFeature(
  has: boolean,
  setting: { key: string; value: unknown; since: string },
  version: ZeroFsVersion,
): void {
  if (has || setting.value === undefined) return;
  throw new SettingsError(
    `${setting.key} is set, but ZeroFS ${formatZeroFsVersion(version)} (the release that ` +
      `runs this volume) has no such setting (it came with ZeroFS ${setting.since}); remove ` +
      `${setting.key} from the StorageClass or ConfigMap, or run a newer ZeroFS`,
  );
}

function checkSettingsFitRelease(settings: VolumeSettings, version: ZeroFsVersion): void {
  const f = zerofsFeatures(version);
  requireFeature(f.compression, {
    key: "compression",
    value: settings.compression,
    since: "2.0.0",
  }, version);
  requireFeature(f.storageClass, {
    key: "storageClass",
    value: settings.storageClass,
    since: "2.0.0",
  }, version);
  for (
    const key of [
      "filesystemMaxSizeGB",
      "lsmL0MaxSsts",
      "lsmMaxConcurrentCompactions",
      "lsmFlushIntervalSecs",
    ] as const
  ) {
    requireFeature(f.tuningTables, { key, value: settings[key], since: "0.17.0" }, version);
  }
  // Telemetry "on" cannot be honoured by a release without it; "off" is what it does anyway.
  requireFeature(f.telemetryTable, {
    key: "telemetry",
    value: settings.telemetry ? true : undefined,
    since: "1.0.7",
  }, version);
}

function tuningTables(settings: VolumeSettings): string[] {
  return [
    ...table("filesystem", [
      optional(
        settings.filesystemMaxSizeGB,
        "max_size_gb",
        (v) => tomlFloat(v, "filesystemMaxSizeGB"),
      ),
      optional(settings.compression, "compression", tomlBasicString),
    ]),
    ...table("lsm", [
      optional(settings.lsmL0MaxSsts, "l0_max_ssts", (v) => tomlInteger(v, "lsmL0MaxSsts")),
      optional(
        settings.lsmMaxConcurrentCompactions,
        "max_concurrent_compactions",
        (v) => tomlInteger(v, "lsmMaxConcurrentCompactions"),
      ),
      optional(
        settings.lsmFlushIntervalSecs,
        "flush_interval_secs",
        (v) => tomlInteger(v, "lsmFlushIntervalSecs"),
      ),
    ]),
  ];
}

function defaultSecretEnvNames(settings: VolumeSettings): string[] {
  return settings.awsCredentialsSecretName
    ? [ENV_AWS_ACCESS_KEY_ID, ENV_AWS_SECRET_ACCESS_KEY]
    : [];
}

/**
 * Render `config.toml` for one volume and one ZeroFS release: unix-socket
 * listeners only (no TCP), `[telemetry] enabled = false` unless the settings
 * turn it on (releases that have the table), `[aws]` only for `s3://` URLs
 * and only with keys that have values.
 *
 * @example
 * ```ts
 * const toml = renderConfigToml(settings, {
 *   volumeId: "pvc-1",
 *   version: { major: 0, minor: 16, patch: 2 },
 *   ninepSocket: "/run/zerofs-csi/v/0123456789abcdef/9p.sock",
 *   nbdSocket: "/run/zerofs-csi/v/0123456789abcdef/nbd.sock",
 *   cacheDir: "/var/lib/zerofs-csi/cache/0123456789abcdef",
 *   secretEnvNames: Object.keys(secretEnv(secrets)),
 * });
 * ```
 */
export function renderConfigToml(settings: VolumeSettings, opts: RenderConfigOptions): string {
  checkSettingsFitRelease(settings, opts.version);
  const features = zerofsFeatures(opts.version);
  const location = resolveVolumeLocation(settings, opts.volumeId);
  const envNames = new Set(opts.secretEnvNames ?? defaultSecretEnvNames(settings));
  const mode = opts.readOnly ? "read-only" : "read-write";
  const lines = [
    `# ZeroFS config rendered by zerofs-csi for volume ${
      tomlBasicString(opts.volumeId)
    } (${mode}, ZeroFS ${formatZeroFsVersion(opts.version)}).`,
    "# Do not edit: the driver rewrites this file and restarts ZeroFS when it changes.",
    "",
    ...table("cache", [
      ["dir", tomlExpandedString(opts.cacheDir)],
      ["disk_size_gb", tomlFloat(settings.cacheDiskSizeGB, "cacheDiskSizeGB")],
      ["memory_size_gb", tomlFloat(settings.cacheMemorySizeGB, "cacheMemorySizeGB")],
    ]),
    ...table("storage", [
      ["url", tomlExpandedString(location.url)],
      ["encryption_password", envReference(ENV_ENCRYPTION_PASSWORD)],
      optional(settings.storageClass, "storage_class", tomlExpandedString),
    ]),
    ...serverTables(opts, features),
    ...tuningTables(settings),
    ...(location.scheme === "s3" ? awsTable(settings, envNames) : []),
    ...(features.telemetryTable
      ? table("telemetry", [["enabled", settings.telemetry ? "true" : "false"]])
      : []),
  ];
  return lines.join("\n");
}
