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

Deno.test("controller settings: CSI credentials replace the environment's as a pair", () => {
  const s = new ControllerSettings({
    env: env({ AWS_ACCESS_KEY_ID: "ENVKEY", AWS_SECRET_ACCESS_KEY: "env-secret" }),
  });
  assert.deepEqual(s.secrets({}), {
    awsAccessKeyId: "ENVKEY",
    awsSecretAccessKey: "env-secret",
  });
  assert.deepEqual(
    s.secrets({ AWS_ACCESS_KEY_ID: "CSIKEY", AWS_SECRET_ACCESS_KEY: "csi-secret" }),
    { awsAccessKeyId: "CSIKEY", awsSecretAccessKey: "csi-secret" },
  );
  assert.throws(
    () => s.secrets({ AWS_SECRET_ACCESS_KEY: "half-pair-value" }),
    (e) => e instanceof SettingsError && !e.message.includes("half-pair-value"),
  );
});

Deno.test("controller settings: a malformed defaults table fails at start", () => {
  assert.throws(() => new ControllerSettings({ defaults: { bogusKey: "1" } }), /bogusKey/);
});
