import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import { SettingsError } from "./types.ts";
import {
  DEFAULT_SETTINGS,
  DEFAULT_STORAGE_URL,
  PARAMETERS,
  parseSettings,
  resolveSettings,
  resolveVolumeLocation,
  SETTINGS,
  SETTINGS_FIX_HINT,
  validateVolumeParameters,
  VOLUME_PARAMETER_KEYS,
  volumeParameterOptions,
} from "./settings.ts";
import {
  secretEnv,
  secretValuesFromCsiSecrets,
  secretValuesFromKubernetesSecrets,
} from "./secrets.ts";

function throwsSettings(fn: () => unknown, pattern: RegExp): SettingsError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  if (!(caught instanceof SettingsError)) throw new Error(`expected SettingsError, got ${caught}`);
  if (!pattern.test(caught.message)) {
    throw new Error(`message ${JSON.stringify(caught.message)} !~ ${pattern}`);
  }
  return caught;
}

Deno.test("validateVolumeParameters accepts every documented key with a good value", () => {
  validateVolumeParameters({
    filesystem: "xfs",
    configMapName: "zerofs-config",
    "csi.storage.k8s.io/fstype": "ext4",
    "csi.storage.k8s.io/pvc/name": "data",
    "csi.storage.k8s.io/pvc/namespace": "default",
    "csi.storage.k8s.io/pv/name": "pvc-1",
    deletePolicy: "retain",
    preflight: "true",
    storageURL: "s3://bucket/base",
    cacheDiskSizeGB: "2.5",
    awsAllowHTTP: "true",
    compression: "zstd-22",
    lsmFlushIntervalSecs: "5",
    envoyEnabled: "", // empty means unset, as in the original driver
  });
  assertEquals(VOLUME_PARAMETER_KEYS.has("awsEndpoint"), true);
});

Deno.test("validateVolumeParameters names an unknown key and lists the allowed ones", () => {
  const e = throwsSettings(() => validateVolumeParameters({ cacheSizeGB: "10" }), /"cacheSizeGB"/);
  assertEquals(e.kind, "invalid");
  assertEquals(e.message.includes("cacheDiskSizeGB"), true);
});

Deno.test("validateVolumeParameters rejects malformed values naming the key", () => {
  throwsSettings(
    () => validateVolumeParameters({ deletePolicy: "purge" }),
    /deletePolicy.*"delete" or "retain"/,
  );
  throwsSettings(
    () => validateVolumeParameters({ preflight: "yes" }),
    /preflight.*"true" or "false"/,
  );
  throwsSettings(() => validateVolumeParameters({ cacheDiskSizeGB: "-1" }), /cacheDiskSizeGB/);
  throwsSettings(() => validateVolumeParameters({ cacheDiskSizeGB: "0" }), /cacheDiskSizeGB/);
  throwsSettings(
    () => validateVolumeParameters({ lsmFlushIntervalSecs: "4" }),
    /lsmFlushIntervalSecs.*≥ 5/,
  );
  throwsSettings(() => validateVolumeParameters({ compression: "zstd-23" }), /compression/);
  throwsSettings(() => validateVolumeParameters({ filesystem: "vfat" }), /filesystem/);
  throwsSettings(
    () => validateVolumeParameters({ envoyEnabled: "false" }),
    /^StorageClass parameter "envoyEnabled" is not allowed: .* only in the ConfigMap/,
  );
  throwsSettings(
    () => validateVolumeParameters({ zerofsImage: "example.com/zerofs:0.16.2" }),
    /^StorageClass parameter "zerofsImage" is not allowed/,
  );
  throwsSettings(() => validateVolumeParameters({ lsmMaxUnflushedGB: "1" }), /max_unflushed_gb/);
});

Deno.test("storageURL: schemes, bucket, normalisation", () => {
  const url = (storageURL: string) => resolveSettings({ parameters: { storageURL } }).storageURL;
  assertEquals(url("s3://bucket/base/"), "s3://bucket/base");
  assertEquals(url("s3://bucket//a//b"), "s3://bucket/a/b");
  assertEquals(url("memory://"), "memory://");
  // ZeroFS speaks them, but the driver gives it only [aws] credentials and cannot delete them.
  throwsSettings(() => url("gs://bucket"), /gs:\/\/ is not supported.*s3:\/\/, memory:\/\//);
  throwsSettings(() => url("azure://container/x"), /azure:\/\/ is not supported/);
  throwsSettings(() => url("file:///data"), /storageURL.*conditional writes/);
  throwsSettings(() => url("http://bucket/x"), /storageURL.*scheme/);
  throwsSettings(() => url("s3:///prefix"), /storageURL.*bucket/);
  throwsSettings(() => url("s3://bucket/../x"), /storageURL.*'\.\.'/);
  throwsSettings(() => url("s3://bucket/x?versionId=1"), /storageURL/);
  throwsSettings(() => url("bucket/x"), /storageURL/);
});

Deno.test("resolveSettings: parameters > ConfigMap > defaults", () => {
  const settings = resolveSettings({
    parameters: { cacheDiskSizeGB: "20", configMapName: "cm", deletePolicy: "retain" },
    configMap: {
      storageURL: "s3://bucket/volumes",
      cacheDiskSizeGB: "5",
      cacheMemorySizeGB: "0.5",
      awsCredentialsSecretName: "aws-creds",
      envoyImage: "example.com/envoy:v1.34.4",
    },
    defaults: { zerofsImage: "example/zerofs:1" },
  });
  assertEquals(settings.cacheDiskSizeGB, 20);
  assertEquals(settings.cacheMemorySizeGB, 0.5);
  assertEquals(settings.zerofsImage, "example/zerofs:1");
  assertEquals(settings.telemetry, false);
  assertEquals(settings.awsAllowHTTP, false);
  assertEquals(settings.cacheDir, DEFAULT_SETTINGS.cacheDir);
  assertEquals(settings.awsCredentialsSecretName, "aws-creds");
  assertEquals(settings.envoyImage, "example.com/envoy:v1.34.4");
  assertEquals(settings.envoyEnabled, false);
});

Deno.test("Envoy keys: the original driver's defaults and its reading of envoyEnabled", () => {
  const envoy = (configMap: Record<string, string>) => {
    const s = resolveSettings({ parameters: {}, configMap });
    return [s.envoyEnabled, s.envoyImage, s.envoyConfigMapRef];
  };
  // Defaults as in jrcichra/zerofs-csi-driver pkg/csi/zerofs.go.
  assertEquals(envoy({}), [false, "envoyproxy/envoy-distroless:v1.34.4", "envoy-config"]);
  // strings.EqualFold(v, "true"): only "true", in any case, turns it on.
  for (const on of ["true", "True", "TRUE"]) assertEquals(envoy({ envoyEnabled: on })[0], true);
  for (const off of ["false", "1", "yes", "on", ""]) {
    assertEquals(envoy({ envoyEnabled: off })[0], false, off);
  }
  const pinned = "r.example/envoy@sha256:" + "a".repeat(64);
  assertEquals(envoy({ envoyImage: pinned })[1], pinned);
  throwsSettings(
    () => envoy({ envoyImage: "envoy proxy" }),
    /^invalid ConfigMap key "envoyImage" = "envoy proxy": must be a container image reference/,
  );
  throwsSettings(
    () => envoy({ envoyConfigMapRef: "Envoy_Config" }),
    /^invalid ConfigMap key "envoyConfigMapRef" = "Envoy_Config": must be a Kubernetes object name/,
  );
});

Deno.test("resolveSettings: unknown ConfigMap key, missing storageURL, bad endpoint", () => {
  throwsSettings(
    () =>
      resolveSettings({ parameters: {}, configMap: { storageURL: "s3://b", awsSecretName: "x" } }),
    /ConfigMap key "awsSecretName"/,
  );
  // No storageURL anywhere: the original driver's default.
  assertEquals(resolveSettings({ parameters: {} }).storageURL, "s3://zerofs");
  assertEquals(DEFAULT_STORAGE_URL, "s3://zerofs");
  const e = throwsSettings(
    () =>
      resolveSettings({
        parameters: { storageURL: "s3://b", awsEndpoint: "http://AKIA:topsecret@minio:9000" },
      }),
    /awsEndpoint.*credentials/,
  );
  assertEquals(e.message.includes("topsecret"), false);
  throwsSettings(
    () => resolveSettings({ parameters: { storageURL: "s3://b", awsEndpoint: "minio:9000" } }),
    /awsEndpoint/,
  );
  throwsSettings(
    () =>
      resolveSettings({ parameters: { storageURL: "s3://b" }, configMap: { cpuLimit: "lots" } }),
    /ConfigMap key "cpuLimit"/,
  );
});

Deno.test("volumeParameterOptions defaults and values", () => {
  // Pre-flight is on unless the StorageClass says preflight: "false".
  assertEquals(volumeParameterOptions({}), { deletePolicy: "delete", preflight: true });
  assertEquals(volumeParameterOptions({ preflight: "false" }).preflight, false);
  assertEquals(
    volumeParameterOptions({
      "csi.storage.k8s.io/fstype": "btrfs",
      configMapName: "cm",
      preflight: "true",
    }),
    { filesystem: "btrfs", configMapName: "cm", deletePolicy: "delete", preflight: true },
  );
});

Deno.test("resolveVolumeLocation: <storageURL>/<volumeId>, prefix ends with <volumeId>/", () => {
  assertEquals(resolveVolumeLocation({ storageURL: "s3://b/base/" }, "pvc-1"), {
    url: "s3://b/base/pvc-1",
    scheme: "s3",
    bucket: "b",
    prefix: "base/pvc-1/",
  });
  assertEquals(resolveVolumeLocation({ storageURL: "s3://b" }, "pvc-1"), {
    url: "s3://b/pvc-1",
    scheme: "s3",
    bucket: "b",
    prefix: "pvc-1/",
  });
  throwsSettings(() => resolveVolumeLocation({ storageURL: "s3://b" }, ""), /volume ID/);
  throwsSettings(() => resolveVolumeLocation({ storageURL: "s3://b" }, "a/b"), /volume ID/);
});

Deno.test("secretEnv maps only present values to their variables", () => {
  assertEquals(
    secretEnv({ encryptionPassword: "p4ssword!", awsAccessKeyId: "AK", awsSecretAccessKey: "SK" }),
    {
      ZEROFS_ENCRYPTION_PASSWORD: "p4ssword!",
      AWS_ACCESS_KEY_ID: "AK",
      AWS_SECRET_ACCESS_KEY: "SK",
    },
  );
  assertEquals(secretEnv({}), {});
});

Deno.test("secretValuesFromCsiSecrets: known keys, unknown key named without its value", () => {
  assertEquals(
    secretValuesFromCsiSecrets({
      encryptionPassword: "long-enough",
      awsAccessKeyID: "AK",
      awsSecretAccessKey: "SK",
    }),
    { encryptionPassword: "long-enough", awsAccessKeyId: "AK", awsSecretAccessKey: "SK" },
  );
  const e = throwsSettings(
    () => secretValuesFromCsiSecrets({ token: "very-secret-value" }),
    /"token"/,
  );
  assertEquals(e.message.includes("very-secret-value"), false);
  throwsSettings(
    () => secretValuesFromCsiSecrets({ password: "a-password", encryptionPassword: "b-password" }),
    /twice/,
  );
  const weak = throwsSettings(
    () => secretValuesFromCsiSecrets({ password: "short" }),
    /at least 8/,
  );
  assertEquals(weak.message.includes('short"'), false);
  throwsSettings(() => secretValuesFromCsiSecrets({ AWS_ACCESS_KEY_ID: "AK" }), /incomplete/);
});

Deno.test("secretValuesFromKubernetesSecrets uses the original driver's keys and fallbacks", () => {
  assertEquals(
    secretValuesFromKubernetesSecrets({ password: "encryption-pw" }, {
      username: "AK",
      password: "SK",
    }),
    { encryptionPassword: "encryption-pw", awsAccessKeyId: "AK", awsSecretAccessKey: "SK" },
  );
  assertEquals(
    secretValuesFromKubernetesSecrets(undefined, {
      AWS_ACCESS_KEY_ID: "AK2",
      username: "ignored",
      AWS_SECRET_ACCESS_KEY: "SK2",
    }),
    { awsAccessKeyId: "AK2", awsSecretAccessKey: "SK2" },
  );
  assertThrows(
    () => secretValuesFromKubernetesSecrets({ password: "CHANGEME" }, undefined),
    SettingsError,
  );
});

Deno.test("an unknown key is refused naming the key, where it was read and the accepted keys", () => {
  const cases: [string, () => unknown, RegExp, string[], string[]][] = [
    [
      "StorageClass parameter",
      () => validateVolumeParameters({ cacheSizeGB: "10" }),
      /^unknown StorageClass parameter "cacheSizeGB"; accepted keys: /,
      ["cacheDiskSizeGB", "configMapName", "deletePolicy", "csi.storage.k8s.io/fstype"],
      ["zerofsImage", "envoyEnabled", "lsmMaxUnflushedGB"],
    ],
    [
      "StorageClass parameter through resolveSettings",
      () => resolveSettings({ parameters: { rustlog: "debug" } }),
      /^unknown StorageClass parameter "rustlog"; accepted keys: /,
      ["rustLog", "filesystem"],
      ["zerofsImage"],
    ],
    [
      "ConfigMap by name",
      () =>
        resolveSettings({
          parameters: {},
          configMap: { storageURL: "s3://b", awsSecretName: "x" },
          configMapName: "zerofs-config",
        }),
      /^unknown ConfigMap key "awsSecretName" \(ConfigMap "zerofs-config"\); accepted keys: /,
      ["awsCredentialsSecretName", "zerofsImage", "envoyEnabled"],
      ["filesystem", "configMapName", "deletePolicy", "preflight"],
    ],
    [
      "ConfigMap: a parameter is not a ConfigMap key",
      () => resolveSettings({ parameters: {}, configMap: { deletePolicy: "retain" } }),
      /^unknown ConfigMap key "deletePolicy"; accepted keys: /,
      ["storageURL"],
      ["deletePolicy"],
    ],
    [
      "volume context",
      () => resolveSettings({ parameters: { cacheSize: "1" }, parametersFrom: "volume_context" }),
      /^unknown volume_context key "cacheSize"; accepted keys: /,
      ["cacheDiskSizeGB", "configMapName"],
      ["zerofsImage"],
    ],
    [
      "settings file",
      () => parseSettings({ zerofsimage: "x" }, { kind: "settings file", path: "/etc/z.toml" }),
      /^unknown settings file key "zerofsimage" \(\/etc\/z\.toml\); accepted keys: /,
      ["zerofsImage", "storageURL"],
      ["filesystem"],
    ],
  ];
  for (const [what, call, pattern, listed, unlisted] of cases) {
    const e = throwsSettings(call, pattern);
    assertEquals(e.kind, "invalid", what);
    const accepted = e.message.split("; accepted keys: ")[1].split(", ");
    for (const key of listed) assertEquals(accepted.includes(key), true, `${what}: lists ${key}`);
    for (const key of unlisted) {
      assertEquals(accepted.includes(key), false, `${what}: does not list ${key}`);
    }
    assertEquals([...accepted].sort(), accepted, `${what}: sorted`);
  }
});

Deno.test("the original driver's lsmMaxUnflushedGB is refused with the reason, from every source", () => {
  throwsSettings(
    () => validateVolumeParameters({ lsmMaxUnflushedGB: "1" }),
    /^StorageClass parameter "lsmMaxUnflushedGB" is not supported: .*max_unflushed_gb/,
  );
  throwsSettings(
    () => resolveSettings({ parameters: {}, configMap: { lsmMaxUnflushedGB: "1" } }),
    /^ConfigMap key "lsmMaxUnflushedGB" is not supported: .*max_unflushed_gb/,
  );
});

Deno.test("StorageClass keys the external-provisioner adds are accepted and not settings", () => {
  const params = {
    "csi.storage.k8s.io/pvc/name": "data",
    "csi.storage.k8s.io/pvc/namespace": "default",
    "csi.storage.k8s.io/pv/name": "pvc-1",
    "csi.storage.k8s.io/fstype": "xfs",
  };
  validateVolumeParameters(params);
  assertEquals(resolveSettings({ parameters: params }), resolveSettings({ parameters: {} }));
  assertEquals(volumeParameterOptions(params).filesystem, "xfs");
  throwsSettings(
    () => validateVolumeParameters({ "csi.storage.k8s.io/fstype": "ntfs" }),
    /^invalid StorageClass parameter "csi.storage.k8s.io\/fstype" = "ntfs": must be "ext4", "xfs" or "btrfs"/,
  );
});

/** A malformed value for every key whose parser can refuse, and what the refusal says. */
const REFUSALS: Record<string, [string, RegExp]> = {
  storageURL: ["bucket/x", /must look like "s3:\/\/bucket\/prefix"/],
  awsEndpoint: ["minio:9000", /must start with http:\/\/ or https:\/\//],
  awsDefaultRegion: ["us east", /must be a region name such as "us-east-1"/],
  awsAllowHTTP: ["maybe", /must be "true" or "false" \(or 1\/0, yes\/no, on\/off, y\/n\)/],
  awsCredentialsSecretName: ["AWS_creds", /must be a Kubernetes object name/],
  encryptionPasswordSecretName: ["pw/x", /must be a Kubernetes object name/],
  cacheDir: ["relative/cache", /must be an absolute path without '\.\.'/],
  cacheDiskSizeGB: ["-1", /must be a positive number such as "10" or "0\.5"/],
  cacheMemorySizeGB: ["0", /must be a positive number/],
  zerofsImage: ["zerofs image", /must be a container image reference/],
  cpuRequest: ["lots", /must be a Kubernetes quantity such as "500m", "2" or "1Gi"/],
  cpuLimit: ["1 core", /must be a Kubernetes quantity/],
  memoryRequest: ["1GB", /must be a Kubernetes quantity/],
  memoryLimit: ["-1Gi", /must be a Kubernetes quantity/],
  rustLog: [" ", /must be a non-empty string without control characters/],
  podReadyTimeoutSeconds: ["0", /must be a whole number ≥ 1/],
  compression: ["zstd-23", /must be "lz4" or "zstd-1" … "zstd-22"/],
  storageClass: ["STANDARD\n", /must be a non-empty string without control characters/],
  telemetry: ["enabled", /must be "true" or "false"/],
  filesystemMaxSizeGB: ["lots", /must be a positive number/],
  lsmL0MaxSsts: ["1.5", /must be a whole number ≥ 1/],
  lsmMaxConcurrentCompactions: ["0", /must be a whole number ≥ 1/],
  lsmFlushIntervalSecs: ["4", /must be a whole number ≥ 5/],
  envoyImage: ["envoy proxy", /must be a container image reference/],
  envoyConfigMapRef: ["Envoy_Config", /must be a Kubernetes object name/],
};

Deno.test("every settings key's parser refuses a malformed value, naming the key and the ConfigMap", () => {
  const refusing = Object.keys(SETTINGS).filter((key) => key !== "envoyEnabled");
  assertEquals(Object.keys(REFUSALS).sort(), refusing.sort(), "one case per refusing key");
  for (const [key, [raw, expected]] of Object.entries(REFUSALS)) {
    const e = throwsSettings(
      () => resolveSettings({ parameters: {}, configMap: { [key]: raw }, configMapName: "cm" }),
      expected,
    );
    const where = `ConfigMap key "${key}" (ConfigMap "cm")`;
    assertEquals(e.message.startsWith(`invalid ${where} = `), true, e.message);
    assertEquals(e.message.endsWith(SETTINGS_FIX_HINT), true, e.message);
  }
  // envoyEnabled reads as the original driver did: anything but "true" (any case) is off.
  assertEquals(
    resolveSettings({ parameters: {}, configMap: { envoyEnabled: "maybe" } }).envoyEnabled,
    false,
  );
});

Deno.test("every StorageClass-only parameter's parser refuses a malformed value", () => {
  const cases: Record<string, [string, RegExp]> = {
    filesystem: ["vfat", /must be "ext4", "xfs" or "btrfs"/],
    configMapName: ["Zerofs_Config", /must be a Kubernetes object name/],
    deletePolicy: ["purge", /must be "delete" or "retain"/],
    preflight: ["yes", /must be "true" or "false"/],
  };
  assertEquals(Object.keys(cases).sort(), Object.keys(PARAMETERS).sort());
  for (const [key, [raw, expected]] of Object.entries(cases)) {
    const e = throwsSettings(() => validateVolumeParameters({ [key]: raw }), expected);
    assertEquals(e.message.startsWith(`invalid StorageClass parameter "${key}" = `), true);
  }
});

Deno.test("every default is a value its own parser accepts", () => {
  for (const [key, setting] of Object.entries(SETTINGS)) {
    if (!("default" in setting)) continue;
    const value = (DEFAULT_SETTINGS as Record<string, unknown>)[key];
    assertEquals(value, setting.default, key);
    assertEquals(setting.parse(String(value), key), value, key);
  }
  assertEquals(DEFAULT_SETTINGS.storageURL, DEFAULT_STORAGE_URL);
});

Deno.test("ConfigMap-only keys are refused from a volume context too, and empty means unset", () => {
  throwsSettings(
    () =>
      resolveSettings({ parameters: { zerofsImage: "x/y:1" }, parametersFrom: "volume_context" }),
    /^volume_context key "zerofsImage" is not allowed: .* only in the ConfigMap/,
  );
  const s = resolveSettings({ parameters: { cacheDiskSizeGB: "" }, configMap: { rustLog: "" } });
  assertEquals(s.cacheDiskSizeGB, DEFAULT_SETTINGS.cacheDiskSizeGB);
  assertEquals("rustLog" in s, false);
});

Deno.test("driver defaults sit under the ConfigMap and the parameters", () => {
  const defaults = parseSettings(
    { storageURL: "s3://b/defaults/", cacheDiskSizeGB: "3", rustLog: "info" },
    { kind: "settings file" },
  );
  assertEquals(defaults, { storageURL: "s3://b/defaults", cacheDiskSizeGB: 3, rustLog: "info" });
  const s = resolveSettings({
    parameters: { cacheDiskSizeGB: "7" },
    configMap: { rustLog: "debug" },
    defaults,
  });
  assertEquals([s.storageURL, s.cacheDiskSizeGB, s.rustLog], ["s3://b/defaults", 7, "debug"]);
});
