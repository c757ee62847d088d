import assert from "node:assert/strict";
import * as kubeSdk from "@kubernetes/client-node";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import {
  cacheSizeLimit,
  type InstanceSpec,
  PodRunner,
  resolveSettings,
  SettingsError,
  volumePaths,
  zerofsPodName,
} from "./mod.ts";

/** A client that is never called: these tests only build pods. */
function unusedKube() {
  const config = new KubeConfig();
  config.loadFromOptions({
    clusters: [{ name: "c", server: "http://127.0.0.1:9" }],
    users: [{ name: "u" }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
  return { config, core: config.makeApiClient(CoreV1Api), sdk: kubeSdk };
}

const runner = new PodRunner({ kube: unusedKube(), namespace: "zerofs", nodeName: "node-1" });

function specWith(configMap: Record<string, string>, readOnly = false): InstanceSpec {
  const settings = resolveSettings({
    parameters: {},
    configMap: {
      storageURL: "s3://b/v",
      encryptionPasswordSecretName: "enc",
      ...configMap,
    },
  });
  const paths = volumePaths("/var/lib/zerofs-csi", "pvc-1");
  return {
    volumeId: "pvc-1",
    stateDir: paths.dir,
    configToml: "x",
    configHash: "h",
    secretEnv: {},
    readOnly,
    ninepSocket: paths.ninepSocket,
    nbdSocket: paths.nbdSocket,
    exportName: "",
    settings,
    zerofsVersion: { major: 0, minor: 16, patch: 2 },
  };
}

Deno.test("zerofsPodName: deterministic, per volume and node, a valid short name", () => {
  const name = zerofsPodName("pvc-" + "a".repeat(124), "node-1");
  assert.match(name, /^zerofs-[0-9a-f]{16}-[0-9a-f]{8}$/);
  assert.equal(name, zerofsPodName("pvc-" + "a".repeat(124), "node-1"));
  assert.notEqual(name, zerofsPodName("pvc-" + "a".repeat(124), "node-2"));
});

Deno.test("cacheSizeLimit: the disk cache plus max(1 GB, 10 %)", () => {
  assert.equal(cacheSizeLimit(1), "2000M");
  assert.equal(cacheSizeLimit(0.5), "1500M");
  assert.equal(cacheSizeLimit(20), "22000M");
});

Deno.test("view: container paths, env names only; without an encryption Secret a SettingsError", () => {
  const paths = volumePaths("/var/lib/zerofs-csi", "pvc-1");
  const settings = specWith({ awsCredentialsSecretName: "aws" }).settings;
  assert.deepEqual(runner.view({ paths, settings, secrets: { encryptionPassword: "ignored!" } }), {
    ninepSocket: "/zerofs/9p.sock",
    nbdSocket: "/zerofs/nbd.sock",
    cacheDir: "/cache",
    secretEnvNames: ["ZEROFS_ENCRYPTION_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
    secretEnv: {},
  });
  const noPassword = resolveSettings({ parameters: {}, configMap: { storageURL: "s3://b/v" } });
  assert.throws(
    () => runner.view({ paths, settings: noPassword, secrets: {} }),
    (e) => e instanceof SettingsError && /encryptionPasswordSecretName/.test(e.message),
  );
});

Deno.test("podFor: readers get --read-only; any pod change changes the pod hash", () => {
  const hash = (s: InstanceSpec) =>
    runner.podFor(s).metadata!.annotations!["zerofs.csi.driver/pod-hash"];
  const writer = specWith({});
  assert.deepEqual(runner.podFor(writer).spec!.containers[0].args, [
    "run",
    "-c",
    "/zerofs/config.toml",
  ]);
  assert.deepEqual(runner.podFor(specWith({}, true)).spec!.containers[0].args, [
    "run",
    "-c",
    "/zerofs/config.toml",
    "--read-only",
  ]);
  assert.equal(hash(writer), hash(specWith({})));
  assert.notEqual(hash(writer), hash(specWith({ zerofsImage: "example.com/zerofs:9" })));
  assert.notEqual(hash(writer), hash(specWith({ memoryLimit: "1Gi" })));
  assert.equal(runner.podFor(writer).spec!.containers[0].resources, undefined);
});

Deno.test("PodRunner: a grace period under 120 s is refused", () => {
  assert.throws(
    () => new PodRunner({ kube: unusedKube(), namespace: "z", nodeName: "n", graceSeconds: 30 }),
    RangeError,
  );
});
