import assert from "node:assert/strict";
import { resolveSettings } from "./settings.ts";
import { SettingsError } from "./types.ts";
import {
  applyPin,
  describeDisagreement,
  parsePin,
  pinFromContext,
  pinFromSettings,
  pinToContext,
} from "./volume_pin.ts";

const atA = resolveSettings({
  parameters: { configMapName: "zerofs" },
  configMap: {
    storageURL: "s3://bucket/site-a/",
    awsEndpoint: "http://minio:9000/",
    awsAllowHTTP: "yes",
    awsCredentialsSecretName: "aws-a",
  },
});

Deno.test("pinFromSettings pins every location key, unset ones as empty strings", () => {
  const pin = pinFromSettings(atA);
  assert.deepEqual(pin, {
    storageURL: "s3://bucket/site-a",
    awsEndpoint: "http://minio:9000",
    awsDefaultRegion: "",
    awsAllowHTTP: "true",
    awsCredentialsSecretName: "aws-a",
    encryptionPasswordSecretName: "",
  });
  assert.deepEqual(pinToContext({ storageURL: "s3://b/v", awsEndpoint: "" }), {
    "zerofs.csi/storageURL": "s3://b/v",
    "zerofs.csi/awsEndpoint": "",
  });
});

Deno.test("a pin survives the round trip through a volume context and a record", () => {
  const pin = pinFromSettings(atA);
  const context = { fsType: "ext4", configMapName: "zerofs", ...pinToContext(pin) };
  assert.deepEqual(pinFromContext(context, "volume_context"), pin);
  assert.deepEqual(parsePin(pin, "record"), pin);
  assert.equal(pinFromContext({ fsType: "ext4" }, "volume_context"), null, "no pin keys");
});

Deno.test("pinned keys are validated like settings, naming the key", () => {
  const bad = (context: Record<string, string>, re: RegExp) =>
    assert.throws(() => pinFromContext(context, "volume_context"), (e) => {
      assert.ok(e instanceof SettingsError);
      assert.equal(e.kind, "invalid");
      assert.match(e.message, re);
      return true;
    });
  bad({ "zerofs.csi/storageURL": "file:///tmp" }, /volume_context key "zerofs\.csi\/storageURL"/);
  bad({ "zerofs.csi/storageURL": "" }, /storageURL.*cannot be empty/);
  bad({ "zerofs.csi/awsEndpoint": "http://user:pw@host" }, /zerofs\.csi\/awsEndpoint.*credentials/);
  bad({ "zerofs.csi/awsAllowHTTP": "maybe" }, /zerofs\.csi\/awsAllowHTTP/);
  bad({ "zerofs.csi/awsCredentialsSecretName": "Not_A_Name" }, /awsCredentialsSecretName/);
  bad(
    { "zerofs.csi/storageUrl": "s3://b/v" },
    /unknown volume_context key "zerofs\.csi\/storageUrl"/,
  );
  assert.throws(
    () => parsePin({ cacheDir: "/x" }, "record r.json"),
    /unknown pinned key "cacheDir"/,
  );
  // A secret-bearing endpoint never appears in the message.
  assert.throws(
    () => pinFromContext({ "zerofs.csi/awsEndpoint": "http://u:hunter2@h" }, "volume_context"),
    (e) => !(e as Error).message.includes("hunter2"),
  );
  // Values are canonicalised as the settings would be.
  assert.deepEqual(
    pinFromContext(
      { "zerofs.csi/storageURL": "s3://b//v/", "zerofs.csi/awsAllowHTTP": "" },
      "volume_context",
    ),
    { storageURL: "s3://b/v", awsAllowHTTP: "false" },
  );
});

Deno.test("applyPin: the pin wins, and every key the settings now disagree on is reported", () => {
  const pin = pinFromSettings(atA);
  assert.deepEqual(applyPin(atA, pin), { settings: atA, disagreements: [] });

  const atB = resolveSettings({
    parameters: { configMapName: "zerofs" },
    configMap: {
      storageURL: "s3://bucket/site-b",
      awsEndpoint: "http://minio:9000",
      awsAllowHTTP: "true",
      awsDefaultRegion: "eu-west-1",
      cacheDiskSizeGB: "7",
    },
  });
  const { settings, disagreements } = applyPin(atB, pin);
  assert.equal(settings.storageURL, "s3://bucket/site-a");
  assert.equal(settings.awsDefaultRegion, undefined, "pinned as unset");
  assert.equal(settings.awsCredentialsSecretName, "aws-a");
  assert.equal(settings.cacheDiskSizeGB, 7, "keys that are not pinned follow the settings");
  assert.deepEqual(disagreements, [
    { key: "storageURL", pinned: "s3://bucket/site-a", current: "s3://bucket/site-b" },
    { key: "awsDefaultRegion", pinned: "", current: "eu-west-1" },
    { key: "awsCredentialsSecretName", pinned: "aws-a", current: "" },
  ]);
  assert.equal(
    describeDisagreement(disagreements[1]),
    'setting "awsDefaultRegion" now resolves to "eu-west-1" but the volume is pinned to ' +
      "(unset) (zerofs.csi/awsDefaultRegion); the pinned value is used",
  );

  // A partial pin (a PersistentVolume written by hand) fixes only what it names.
  const partial = applyPin(atB, { storageURL: "s3://bucket/site-a" });
  assert.equal(partial.settings.storageURL, "s3://bucket/site-a");
  assert.equal(partial.settings.awsDefaultRegion, "eu-west-1");
  assert.deepEqual(partial.disagreements.map((d) => d.key), ["storageURL"]);
});
