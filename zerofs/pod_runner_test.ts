import assert from "node:assert/strict";
import * as kubeSdk from "@kubernetes/client-node";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import {
  cacheSizeLimit,
  describePod,
  type InstanceSpec,
  PodRunner,
  ProcessRunner,
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

/** What every hardened container must carry, whatever else it sets. */
const NO_PRIVILEGES = {
  privileged: false,
  allowPrivilegeEscalation: false,
  capabilities: { drop: ["ALL"] },
  readOnlyRootFilesystem: true,
};

Deno.test("podFor: hardened — seccomp RuntimeDefault, ZeroFS uid 0 with no capabilities, read-only root", () => {
  const spec = runner.podFor(specWith({})).spec!;
  assert.deepEqual(spec.securityContext, { seccompProfile: { type: "RuntimeDefault" } });
  assert.equal(spec.containers.length, 1);
  const zerofs = spec.containers[0];
  assert.deepEqual(zerofs.securityContext, { ...NO_PRIVILEGES, runAsUser: 0, runAsGroup: 0 });
  // Read-only root: everything ZeroFS writes lies on a volume — its sockets in the
  // state dir, its cache in the emptyDir.
  assert.deepEqual(zerofs.volumeMounts, [
    { name: "state", mountPath: "/zerofs" },
    { name: "cache", mountPath: "/cache" },
  ]);
  assert.deepEqual(spec.volumes!.map((v) => v.name), ["state", "cache"]);
  assert.ok(spec.volumes![1].emptyDir, "the cache is an emptyDir");
  assert.equal(spec.hostNetwork, undefined);
  assert.equal(spec.hostPID, undefined);
});

Deno.test('podFor: no Envoy sidecar unless envoyEnabled is "true"', () => {
  const offs: Record<string, string>[] = [{}, { envoyEnabled: "false" }, { envoyEnabled: "1" }];
  for (const configMap of offs) {
    const spec = runner.podFor(specWith(configMap)).spec!;
    assert.equal(spec.initContainers, undefined, JSON.stringify(configMap));
    assert.deepEqual(spec.containers.map((c) => c.name), ["zerofs"]);
    assert.ok(!spec.volumes!.some((v) => v.name === "envoy-config"), JSON.stringify(configMap));
  }
});

Deno.test("podFor: envoyEnabled adds the original driver's sidecar, with its defaults, as uid 101 without privileges", () => {
  const withEnvoy = runner.podFor(specWith({ envoyEnabled: "True" }));
  const spec = withEnvoy.spec!;
  // A native sidecar: an init container that keeps running (starts before ZeroFS, stops after it).
  assert.deepEqual(spec.initContainers, [{
    name: "envoy",
    image: "envoyproxy/envoy-distroless:v1.34.4",
    restartPolicy: "Always",
    terminationMessagePolicy: "FallbackToLogsOnError",
    securityContext: { ...NO_PRIVILEGES, runAsUser: 101, runAsGroup: 101, runAsNonRoot: true },
    volumeMounts: [{ name: "envoy-config", mountPath: "/etc/envoy", readOnly: true }],
  }]);
  assert.deepEqual(spec.volumes!.find((v) => v.name === "envoy-config"), {
    name: "envoy-config",
    configMap: { name: "envoy-config" },
  });
  // ZeroFS itself is unchanged by the sidecar.
  assert.deepEqual(spec.containers, runner.podFor(specWith({})).spec!.containers);

  const custom = runner.podFor(specWith({
    envoyEnabled: "true",
    envoyImage: "registry.example/envoy:v1.35.0",
    envoyConfigMapRef: "s3-proxy",
  })).spec!;
  assert.equal(custom.initContainers![0].image, "registry.example/envoy:v1.35.0");
  assert.deepEqual(custom.volumes!.find((v) => v.name === "envoy-config")?.configMap, {
    name: "s3-proxy",
  });
  const hash = (p: typeof withEnvoy) => p.metadata!.annotations!["zerofs.csi.driver/pod-hash"];
  assert.notEqual(hash(withEnvoy), hash(runner.podFor(specWith({}))));
});

Deno.test("describePod: a crashing Envoy sidecar is named as why ZeroFS has not started", () => {
  const pod = runner.podFor(specWith({ envoyEnabled: "true" }));
  pod.status = {
    phase: "Pending",
    initContainerStatuses: [{
      name: "envoy",
      image: "envoyproxy/envoy-distroless:v1.34.4",
      imageID: "",
      ready: false,
      restartCount: 3,
      state: { waiting: { reason: "CrashLoopBackOff", message: "back-off 40s" } },
    }],
  };
  assert.equal(
    describePod(pod),
    "Pending, envoy sidecar waiting: CrashLoopBackOff (back-off 40s)",
  );
});

Deno.test("Envoy keys: only from the ConfigMap, validated naming the key; process mode refuses the sidecar", () => {
  assert.throws(
    () => specWith({ envoyImage: "bad image" }),
    (e) => e instanceof SettingsError && /ConfigMap key "envoyImage"/.test(e.message),
  );
  assert.throws(
    () => specWith({ envoyConfigMapRef: "Envoy_Config" }),
    (e) => e instanceof SettingsError && /ConfigMap key "envoyConfigMapRef"/.test(e.message),
  );
  for (const key of ["envoyEnabled", "envoyImage", "envoyConfigMapRef", "zerofsImage"]) {
    assert.throws(
      () => resolveSettings({ parameters: { [key]: "true" }, configMap: {} }),
      (e) =>
        e instanceof SettingsError &&
        e.message.startsWith(`StorageClass parameter "${key}" is not allowed`) &&
        e.message.includes("only in the ConfigMap"),
      key,
    );
  }
  const paths = volumePaths("/var/lib/zerofs-csi", "pvc-1");
  const process = new ProcessRunner({ zerofsBin: "/nonexistent/zerofs" });
  assert.throws(
    () =>
      process.view({ paths, settings: specWith({ envoyEnabled: "true" }).settings, secrets: {} }),
    (e) =>
      e instanceof SettingsError &&
      e.message ===
        `"envoyEnabled" is "true", but the Envoy sidecar exists only in pod mode: run the node ` +
          `with --runner=pod, or set "envoyEnabled" to "false" (or remove it) in the ConfigMap`,
  );
  const off = process.view({ paths, settings: specWith({}).settings, secrets: {} });
  assert.equal(off.ninepSocket, paths.ninepSocket);
});
