/**
 * What a user of the original Go driver (jrcichra/zerofs-csi-driver) brings
 * along is accepted as it is: its README's ConfigMap and StorageClass
 * (tests/fixtures/original_driver/, copied verbatim), and its volumes'
 * location `<storageURL>/<volumeId>` with its default storageURL.
 * Also: the example Secret this repository ships is refused as a password.
 *
 * Run: `deno test -A tests/integration/original_driver_compat_test.ts`.
 */

import assert from "node:assert/strict";
import { load, loadAll } from "js-yaml";
import { parseCapability } from "../../csi/mod.ts";
import {
  resolveSettings,
  resolveVolumeLocation,
  secretValuesFromKubernetesSecrets,
  SettingsError,
  validateVolumeParameters,
  volumeParameterOptions,
} from "../../zerofs/mod.ts";

const fixture = (name: string) =>
  Deno.readTextFile(new URL(`../fixtures/original_driver/${name}`, import.meta.url));

interface StorageClassDoc {
  provisioner: string;
  parameters: Record<string, string>;
  mountOptions: string | string[];
}

Deno.test("original driver: its README's ConfigMap and StorageClass are accepted as they are", async () => {
  const configMap = load(await fixture("configmap.yaml")) as { data: Record<string, string> };
  const sc = load(await fixture("storageclass.yaml")) as StorageClassDoc;
  assert.equal(sc.provisioner, "zerofs.csi.driver");

  validateVolumeParameters(sc.parameters);
  assert.equal(volumeParameterOptions(sc.parameters).filesystem, "btrfs");
  const settings = resolveSettings({ parameters: sc.parameters, configMap: configMap.data });
  assert.equal(settings.storageURL, "s3://zerofs", "the original's default storageURL");
  assert.equal(settings.awsAllowHTTP, true);
  assert.equal(settings.awsEndpoint, "http://minio.minio:9000");
  assert.equal(settings.awsDefaultRegion, "us-east-1");
  assert.equal(settings.awsCredentialsSecretName, "minio-zerofs-credentials");
  assert.equal(settings.encryptionPasswordSecretName, "zerofs-encryption-password");
  // The original placed a volume at <storageURL>/<volumeId>.
  assert.equal(resolveVolumeLocation(settings, "pvc-1").url, "s3://zerofs/pvc-1");

  // The README writes mountOptions as a scalar; Kubernetes takes a list of them.
  const flags = [sc.mountOptions].flat();
  const cap = parseCapability({
    mount: { fs_type: "btrfs", mount_flags: flags },
    access_mode: { mode: "SINGLE_NODE_WRITER" },
  });
  assert.deepEqual(cap.mountFlags, ["compress-force=zstd"]);
});

Deno.test("original driver: awsAllowHTTP as ZeroFS's object store reads it; empty keys unset", () => {
  const allow = (awsAllowHTTP: string) =>
    resolveSettings({ parameters: {}, configMap: { awsAllowHTTP } }).awsAllowHTTP;
  for (const yes of ["true", "True", "TRUE", "1", "yes", "on", "y"]) assert.equal(allow(yes), true);
  for (const no of ["false", "False", "0", "no", "off", "n"]) assert.equal(allow(no), false);
  assert.throws(() => allow("maybe"), SettingsError);
  // The original read every key with cmp.Or(value, default): "" means unset.
  const empty = resolveSettings({
    parameters: {},
    configMap: { storageURL: "", cacheDir: "", awsEndpoint: "", awsAllowHTTP: "" },
  });
  assert.equal(empty.storageURL, "s3://zerofs");
  assert.equal(empty.awsEndpoint, undefined);
  assert.equal(empty.awsAllowHTTP, false);
  // envoyEnabled: on only for strings.EqualFold(v, "true"); anything else was off.
  const envoy = (envoyEnabled: string) =>
    resolveSettings({ parameters: {}, configMap: { envoyEnabled } }).envoyEnabled;
  assert.equal(envoy("True"), true);
  assert.equal(envoy("1"), false);
  assert.equal(envoy("false"), false);
});

Deno.test("the example encryption password shipped in manifests/base is refused", async () => {
  const text = await Deno.readTextFile(
    new URL("../../manifests/base/example-secrets.yaml", import.meta.url),
  );
  const docs = loadAll(text) as {
    metadata: { name: string };
    stringData: Record<string, string>;
  }[];
  const secret = docs.find((d) => d.metadata.name === "zerofs-encryption-password")!;
  const shipped = secret.stringData.password;
  assert.ok(shipped.length >= 8, "longer than the minimum: only the placeholder check catches it");
  for (const password of [shipped, "CHANGEME", "my-changeme-pw", "ChangeMe123", "7-chars"]) {
    assert.throws(
      () => secretValuesFromKubernetesSecrets({ password }, undefined),
      (e: Error) =>
        e instanceof SettingsError && /changeme/.test(e.message) && !e.message.includes(password),
      password,
    );
  }
  assert.deepEqual(
    secretValuesFromKubernetesSecrets({ password: "a-real-password" }, undefined),
    { encryptionPassword: "a-real-password" },
  );
});
