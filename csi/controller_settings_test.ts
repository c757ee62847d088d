import assert from "node:assert/strict";
import { SettingsError } from "../zerofs/mod.ts";
import { ControllerSettings, FileConfigMapSource } from "./controller_settings.ts";

const env = (vars: Record<string, string>) => (n: string) => vars[n];

Deno.test("controller settings: parameters > ConfigMap > file defaults", async () => {
  const s = new ControllerSettings({
    defaults: { storageURL: "s3://b/base", awsDefaultRegion: "eu-west-1" },
    configMaps: new FileConfigMapSource({ other: { storageURL: "s3://b/other" } }),
    env: env({}),
  });
  assert.equal((await s.access({})).settings.storageURL, "s3://b/base");
  const cm = await s.access({ configMapName: "other" });
  assert.equal(cm.settings.storageURL, "s3://b/other");
  assert.equal(cm.settings.awsDefaultRegion, "eu-west-1");
  const p = await s.access({ configMapName: "other", storageURL: "s3://b/param" });
  assert.equal(p.settings.storageURL, "s3://b/param");
  await assert.rejects(
    s.access({ configMapName: "nope" }),
    (e) => e instanceof SettingsError && e.kind === "precondition" && /"nope"/.test(e.message),
  );
});

Deno.test("controller settings: legacy access uses the default ConfigMap, null without storageURL", async () => {
  const cms = new FileConfigMapSource({ legacy: { storageURL: "s3://old/vols" } });
  const withDefault = new ControllerSettings({ configMaps: cms, defaultConfigMapName: "legacy" });
  assert.equal((await withDefault.legacyAccess())?.settings.storageURL, "s3://old/vols");
  assert.equal(await new ControllerSettings({ configMaps: cms }).legacyAccess(), null);
});

Deno.test("controller settings: CSI credentials replace the environment's as a pair", async () => {
  const s = new ControllerSettings({
    env: env({ AWS_ACCESS_KEY_ID: "ENVKEY", AWS_SECRET_ACCESS_KEY: "env-secret" }),
  });
  assert.deepEqual(await s.secrets({}), {
    awsAccessKeyId: "ENVKEY",
    awsSecretAccessKey: "env-secret",
  });
  assert.deepEqual(
    await s.secrets({ AWS_ACCESS_KEY_ID: "CSIKEY", AWS_SECRET_ACCESS_KEY: "csi-secret" }),
    { awsAccessKeyId: "CSIKEY", awsSecretAccessKey: "csi-secret" },
  );
  await assert.rejects(
    s.secrets({ AWS_SECRET_ACCESS_KEY: "half-pair-value" }),
    (e) => e instanceof SettingsError && !e.message.includes("half-pair-value"),
  );
});

/** A SecretSource over fixed data that counts reads. */
function secretSource(secrets: Record<string, Record<string, string>>) {
  const reads: string[] = [];
  return {
    reads,
    get(name: string) {
      reads.push(name);
      return Promise.resolve(Object.hasOwn(secrets, name) ? { ...secrets[name] } : undefined);
    },
  };
}

const apiSettings = (
  secrets: ReturnType<typeof secretSource>,
  vars: Record<string, string> = {},
) =>
  new ControllerSettings({
    defaults: { storageURL: "s3://b/base" },
    configMaps: new FileConfigMapSource({
      named: { storageURL: "s3://b/named", awsCredentialsSecretName: "aws" },
      missing: { storageURL: "s3://b/m", awsCredentialsSecretName: "no-such-secret" },
      empty: { storageURL: "s3://b/e", awsCredentialsSecretName: "empty" },
      half: { storageURL: "s3://b/h", awsCredentialsSecretName: "half" },
    }),
    secrets,
    namespace: "zerofs",
    env: env(vars),
  });

Deno.test("controller settings: credentials order CSI → named Secret → environment", async () => {
  const source = secretSource({
    aws: { AWS_ACCESS_KEY_ID: "SECRETKEY", AWS_SECRET_ACCESS_KEY: "from-secret" },
  });
  const s = apiSettings(source, { AWS_ACCESS_KEY_ID: "ENVKEY", AWS_SECRET_ACCESS_KEY: "env" });
  // The Secret beats the environment; it is read on every call (rotation).
  const named = await s.access({ configMapName: "named" });
  assert.deepEqual(named.secrets, {
    awsAccessKeyId: "SECRETKEY",
    awsSecretAccessKey: "from-secret",
  });
  await s.access({ configMapName: "named" });
  assert.deepEqual(source.reads, ["aws", "aws"]);
  // CSI secrets beat the Secret, which is then not read at all.
  const csi = await s.access({ configMapName: "named" }, {
    AWS_ACCESS_KEY_ID: "CSIKEY",
    AWS_SECRET_ACCESS_KEY: "csi-secret",
  });
  assert.deepEqual(csi.secrets, { awsAccessKeyId: "CSIKEY", awsSecretAccessKey: "csi-secret" });
  assert.equal(source.reads.length, 2);
  // No Secret named → the environment.
  assert.deepEqual((await s.access({})).secrets, {
    awsAccessKeyId: "ENVKEY",
    awsSecretAccessKey: "env",
  });
  // Nothing anywhere → empty: the SDK's default chain.
  const bare = apiSettings(source);
  assert.deepEqual((await bare.access({})).secrets, {});
  // The original driver's key names (username/password) are accepted.
  const legacyKeys = apiSettings(secretSource({ aws: { username: "U", password: "p-secret" } }));
  assert.deepEqual((await legacyKeys.access({ configMapName: "named" })).secrets, {
    awsAccessKeyId: "U",
    awsSecretAccessKey: "p-secret",
  });
});

Deno.test("controller settings: a named Secret that is missing or unusable is FAILED_PRECONDITION", async () => {
  const s = apiSettings(
    secretSource({
      empty: { unrelated: "x" },
      half: { AWS_ACCESS_KEY_ID: "KEY", other: "half-secret-value" },
    }),
    { AWS_ACCESS_KEY_ID: "ENVKEY", AWS_SECRET_ACCESS_KEY: "env" },
  );
  const precondition = (re: RegExp) => (e: unknown) =>
    e instanceof SettingsError && e.kind === "precondition" && re.test(e.message) &&
    !e.message.includes("half-secret-value");
  await assert.rejects(
    s.access({ configMapName: "missing" }),
    precondition(
      /Secret "no-such-secret" \(awsCredentialsSecretName\) in namespace "zerofs" does not exist/,
    ),
  );
  await assert.rejects(
    s.access({ configMapName: "empty" }),
    precondition(/"empty".*AWS_ACCESS_KEY_ID/),
  );
  await assert.rejects(s.access({ configMapName: "half" }), precondition(/"half".*incomplete/));
  await assert.rejects(
    s.access({ configMapName: "gone" }),
    precondition(
      /ConfigMap "gone" \(StorageClass parameter\) does not exist; create it in namespace "zerofs"/,
    ),
  );
});

Deno.test("controller settings: standalone (no Secret source) ignores awsCredentialsSecretName", async () => {
  const s = new ControllerSettings({
    configMaps: new FileConfigMapSource({
      named: { storageURL: "s3://b/named", awsCredentialsSecretName: "aws" },
    }),
    env: env({ AWS_ACCESS_KEY_ID: "ENVKEY", AWS_SECRET_ACCESS_KEY: "env" }),
  });
  assert.deepEqual((await s.access({ configMapName: "named" })).secrets, {
    awsAccessKeyId: "ENVKEY",
    awsSecretAccessKey: "env",
  });
});

Deno.test("controller settings: with API ConfigMaps the settings file gives only defaults", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/settings.toml`;
    await Deno.writeTextFile(path, `storageURL = "s3://b/base"\n`);
    const api = new FileConfigMapSource({ x: { storageURL: "s3://b/x" } });
    const s = await ControllerSettings.load(path, { configMaps: api });
    assert.equal((await s.access({ configMapName: "x" })).settings.storageURL, "s3://b/x");
    assert.equal((await s.access({})).settings.storageURL, "s3://b/base");
    await Deno.writeTextFile(
      path,
      `storageURL = "s3://b/base"\n[configMaps.other]\nstorageURL = "s3://b/o"\n`,
    );
    await assert.rejects(
      ControllerSettings.load(path, { configMaps: api }),
      (e) =>
        e instanceof SettingsError && /\[configMaps\.other\].*--config-source file/.test(e.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("controller settings: a malformed defaults table fails at start", () => {
  assert.throws(() => new ControllerSettings({ defaults: { bogusKey: "1" } }), /bogusKey/);
});
