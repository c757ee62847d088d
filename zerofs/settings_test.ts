import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import { SettingsError } from "./types.ts";
import {
  DEFAULT_SETTINGS,
  DEFAULT_STORAGE_URL,
  resolveSettings,
  resolveVolumeLocation,
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
  assertEquals(volumeParameterOptions({}), { deletePolicy: "delete", preflight: false });
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
