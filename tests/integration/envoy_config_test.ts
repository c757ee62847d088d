/**
 * The example Envoy config shipped as the kustomize component
 * `manifests/components/envoy`, checked against Envoy's v3 API by
 * `envoy-config-check` (tools/envoy-config-check: go-control-plane's
 * generated types and protoc-gen-validate rules, installed by
 * `bash .ci/install`). Envoy itself never runs on these machines: this schema
 * check and the pod-spec tests in zerofs/pod_runner_test.ts are all the
 * sidecar gets.
 *
 * The last test creates a ZeroFS pod with the sidecar through the real client
 * and the API stand-in, as the node's ServiceAccount.
 *
 * Run (as root): `deno test -A tests/integration/envoy_config_test.ts`.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import * as kubeSdk from "@kubernetes/client-node";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { dump, load } from "js-yaml";
import { type KubeObject, renderObjects } from "../helpers/manifests.ts";
import { BASE_MANIFESTS_DIR, startKubeStandin } from "../fixtures/kube/mod.ts";
import { STANDIN_BIN } from "../fixtures/zerofs_standin/mod.ts";
import { locateStore } from "../fixtures/zerofs_standin/store.ts";
import {
  createKubeClient,
  PodRunner,
  renderConfigToml,
  resolveSettings,
  resolveVolumeLocation,
  volumePaths,
  zerofsPodName,
} from "../../zerofs/mod.ts";
import { ENVOY_FENCING_WARNING } from "../../zerofs/pod_runner.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const COMPONENT = join(ROOT, "manifests/components/envoy");
const EXAMPLE = join(COMPONENT, "envoy.yaml");
const CHECKER_TIMEOUT_MS = 30_000;

/** The checker's version is the `version` constant of its source; .ci/install builds that one. */
async function checkerPath(): Promise<string> {
  const source = await Deno.readTextFile(join(ROOT, "tools/envoy-config-check/main.go"));
  const version = /^const version = "([^"]+)"$/m.exec(source)?.[1];
  assert.ok(version, "tools/envoy-config-check/main.go declares no `const version`");
  const path = `/opt/envoy-config-check-${version}/envoy-config-check`;
  try {
    await Deno.stat(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    throw new Error(
      `${path} is missing: run \`bash .ci/install\` (it builds tools/envoy-config-check)`,
    );
  }
  const reported = (await runChecker(path, ["--version"])).stdout;
  if (!reported.startsWith(`envoy-config-check ${version} `)) {
    throw new Error(
      `${path} reports ${JSON.stringify(reported)}, not ${version}: run \`bash .ci/install\``,
    );
  }
  return path;
}

interface CheckResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The only place the checker runs: argv array, bounded, its exit code and output returned. */
async function runChecker(path: string, args: string[]): Promise<CheckResult> {
  const out = await new Deno.Command(path, {
    args,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(CHECKER_TIMEOUT_MS),
  }).output();
  const result = {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout).trim(),
    stderr: new TextDecoder().decode(out.stderr).trim(),
  };
  if (out.signal !== null || ![0, 1].includes(out.code)) {
    throw new Error(
      `${path} ${args.join(" ")} failed: exit ${out.code}, signal ${out.signal}: ` +
        result.stderr.slice(-2000),
    );
  }
  return result;
}

/** A variant of the shipped example, changed by `edit`, written to a temp file. */
async function variant(dir: string, name: string, edit: (cfg: KubeObject) => void) {
  const cfg = load(await Deno.readTextFile(EXAMPLE)) as KubeObject;
  edit(cfg);
  const path = join(dir, `${name}.yaml`);
  await Deno.writeTextFile(path, dump(cfg));
  return path;
}

const route = (cfg: KubeObject) =>
  cfg.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config
    .virtual_hosts[0].routes[0].route;

Deno.test("envoy example: the shipped config is a valid Envoy v3 bootstrap", async () => {
  const checker = await checkerPath();
  const result = await runChecker(checker, [EXAMPLE]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, `${EXAMPLE}: valid Envoy v3 bootstrap`);
  // What the README promises of it: an upstream S3 cluster, timeouts, a retry policy
  // that only retries requests the store never saw, and no per-try timeout.
  const cfg = load(await Deno.readTextFile(EXAMPLE)) as KubeObject;
  assert.equal(route(cfg).cluster, cfg.static_resources.clusters[0].name);
  assert.equal(route(cfg).timeout, "300s");
  assert.equal(route(cfg).retry_policy.retry_on, "connect-failure,refused-stream");
  assert.equal(route(cfg).retry_policy.per_try_timeout, undefined);
  assert.equal(cfg.static_resources.clusters[0].connect_timeout, "5s");
});

Deno.test("envoy example: broken variants are refused with the schema's reason", async () => {
  const checker = await checkerPath();
  const dir = await Deno.makeTempDir({ prefix: "envoy-config-" });
  try {
    const cases: Array<[string, (cfg: KubeObject) => void, string]> = [
      [
        "retry-unknown-field",
        (cfg) => route(cfg).retry_policy.retries_max = 3,
        'unknown field "retries_max"',
      ],
      [
        "route-without-cluster",
        (cfg) => delete route(cfg).cluster,
        "invalid RouteAction.ClusterSpecifier: value is required",
      ],
      [
        "zero-connect-timeout",
        (cfg) => cfg.static_resources.clusters[0].connect_timeout = "0s",
        "invalid Cluster.ConnectTimeout: value must be greater than 0s",
      ],
      [
        "unknown-extension",
        (cfg) =>
          cfg.static_resources.listeners[0].filter_chains[0].filters[0].typed_config["@type"] =
            "type.googleapis.com/envoy.extensions.filters.network.no_such_filter.v3.Filter",
        'unable to resolve "type.googleapis.com/envoy.extensions.filters.network.no_such_filter',
      ],
    ];
    for (const [name, edit, reason] of cases) {
      const path = await variant(dir, name, edit);
      const result = await runChecker(checker, [path]);
      assert.equal(result.code, 1, `${name}: ${result.stdout}`);
      assert.ok(
        result.stderr.startsWith(`${path}: invalid Envoy v3 bootstrap: `),
        `${name}: ${result.stderr}`,
      );
      assert.ok(result.stderr.includes(reason), `${name}: ${result.stderr}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Render `overlays/production` with the Envoy component, as the component's comment says to. */
async function renderProductionWithEnvoy(): Promise<KubeObject[]> {
  const dir = await Deno.makeTempDir({ prefix: "kustomize-envoy-" });
  try {
    // kustomize takes only relative paths to other kustomizations.
    await Deno.writeTextFile(
      join(dir, "kustomization.yaml"),
      dump({
        apiVersion: "kustomize.config.k8s.io/v1beta1",
        kind: "Kustomization",
        resources: [relative(dir, join(ROOT, "manifests/overlays/production"))],
        components: [relative(dir, COMPONENT)],
      }),
    );
    return await renderObjects(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function configMap(objects: KubeObject[], name: string): KubeObject | undefined {
  return objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === name);
}

Deno.test("envoy component: off by default; with it, ZeroFS pods get the sidecar and talk to its listener", async () => {
  const plain = await renderObjects(join(ROOT, "manifests/overlays/production"));
  assert.equal(configMap(plain, "envoy-config"), undefined);
  assert.equal(configMap(plain, "zerofs-default")?.data.envoyEnabled, undefined);

  const objects = await renderProductionWithEnvoy();
  const envoyConfig = configMap(objects, "envoy-config");
  assert.equal(envoyConfig?.metadata.namespace, "zerofs");
  assert.equal(envoyConfig.data["envoy.yaml"], await Deno.readTextFile(EXAMPLE));

  const data = configMap(objects, "zerofs-default")!.data as Record<string, string>;
  const settings = resolveSettings({
    parameters: {},
    configMap: { ...data, storageURL: "s3://bucket/zerofs-csi" },
  });
  assert.equal(settings.envoyEnabled, true);
  assert.equal(settings.awsAllowHTTP, true, "the local listener speaks plain HTTP");
  // ZeroFS's endpoint is the example's listener.
  const listener = (load(envoyConfig.data["envoy.yaml"]) as KubeObject).static_resources
    .listeners[0].address.socket_address;
  assert.equal(settings.awsEndpoint, `http://${listener.address}:${listener.port_value}`);

  const kube = new KubeConfig();
  kube.loadFromOptions({
    clusters: [{ name: "c", server: "http://127.0.0.1:9" }],
    users: [{ name: "u" }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
  const runner = new PodRunner({
    kube: { config: kube, core: kube.makeApiClient(CoreV1Api), sdk: kubeSdk },
    namespace: "zerofs",
    nodeName: "node-1",
  });
  const paths = volumePaths("/var/lib/zerofs-csi", "pvc-1");
  const pod = runner.podFor({
    volumeId: "pvc-1",
    stateDir: paths.dir,
    configToml: resolveVolumeLocation(settings, "pvc-1").url,
    configHash: "h",
    secretEnv: {},
    readOnly: false,
    ninepSocket: paths.ninepSocket,
    nbdSocket: paths.nbdSocket,
    exportName: "",
    settings,
    zerofsVersion: { major: 0, minor: 16, patch: 2 },
  });
  const sidecar = pod.spec!.initContainers![0];
  assert.equal(sidecar.image, data.envoyImage);
  assert.equal(
    pod.spec!.volumes!.find((v) => v.name === sidecar.volumeMounts![0].name)?.configMap?.name,
    envoyConfig.metadata.name,
  );
});

const STANDIN_IMAGE = "zerofs-csi.test/zerofs-standin:2.3.0";
/** Where the ZeroFS stand-in keeps its "buckets" when its env names none (pods get no such env). */
const STANDIN_STORE_ROOT = "/run/zerofs-csi/standin-store";

Deno.test("envoy sidecar: the node account creates the pod with it through the API, and the fencing warning is logged", async () => {
  await Deno.mkdir("/run/zerofs-csi", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "/run/zerofs-csi", prefix: "envoy-pod-" });
  const bucket = `envoy-${crypto.randomUUID().slice(0, 8)}`;
  const envoyImage = "envoyproxy/envoy-distroless:v1.34.4";
  // The stand-in kubelet runs init containers to completion and has no native sidecars:
  // "Envoy" here is a program that exits at once. What this shows is the API round trip
  // (the client keeps restartPolicy and securityContext), the RBAC and the log line.
  const api = await startKubeStandin({
    manifestsDir: BASE_MANIFESTS_DIR,
    images: { [STANDIN_IMAGE]: STANDIN_BIN, [envoyImage]: "/bin/true" },
    nodeNames: ["node-a"],
    maxGracePeriodSeconds: 3,
    tempRoot: dir,
    seed: [
      {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: "zerofs-encryption-password", namespace: "zerofs" },
        stringData: { password: "envoy-pod-test-password" },
      },
      {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "envoy-config", namespace: "zerofs" },
        data: { "envoy.yaml": await Deno.readTextFile(EXAMPLE) },
      },
    ],
  });
  const logged: Array<{ level: string; msg: string }> = [];
  try {
    const kube = await createKubeClient({
      kubeconfig: api.kubeconfigFor("zerofs/zerofs-csi-node"),
    });
    const runner = new PodRunner({
      kube,
      namespace: "zerofs",
      nodeName: "node-a",
      log: { log: (level, msg) => logged.push({ level, msg }) },
    });
    const settings = resolveSettings({
      parameters: {},
      configMap: {
        storageURL: `s3://${bucket}/volumes`,
        encryptionPasswordSecretName: "zerofs-encryption-password",
        zerofsImage: STANDIN_IMAGE,
        podReadyTimeoutSeconds: "60",
        envoyEnabled: "true",
      },
    });
    const volumeId = "pvc-envoy-1";
    const paths = volumePaths(join(dir, "state"), volumeId);
    await Deno.mkdir(paths.dir, { recursive: true, mode: 0o700 });
    const view = runner.view({ paths, settings, secrets: {} });
    const version = await runner.version(settings);
    const configToml = renderConfigToml(settings, { volumeId, readOnly: false, version, ...view });
    const spec = {
      volumeId,
      stateDir: paths.dir,
      configToml,
      configHash: createHash("sha256").update(configToml).digest("hex"),
      secretEnv: view.secretEnv,
      readOnly: false,
      ninepSocket: paths.ninepSocket,
      nbdSocket: paths.nbdSocket,
      exportName: "",
      settings,
      zerofsVersion: version,
    };
    const status = await runner.ensure(spec);
    assert.equal(status.ready, true, String(status.reason));

    const stored = api.objects.get(
      api.typeOf("v1", "Pod"),
      "zerofs",
      zerofsPodName(volumeId, "node-a"),
    );
    assert.deepEqual(stored.spec.initContainers, runner.podFor(spec).spec!.initContainers);
    assert.equal(stored.spec.initContainers[0].restartPolicy, "Always");
    assert.deepEqual(
      logged.filter((l) => l.msg === ENVOY_FENCING_WARNING).map((l) => l.level),
      ["warn"],
    );
    assert.match(ENVOY_FENCING_WARNING, /retries can break ZeroFS's fencing guarantees/);
    const denied = api.requests.filter((r) => !r.allowed);
    assert.deepEqual(denied, [], "the node account may create this pod");
    await runner.stop(volumeId, spec.stateDir);
  } finally {
    await api.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    const store = locateStore(`s3://${bucket}/volumes`, STANDIN_STORE_ROOT);
    await Deno.remove(dirname(store.dir), { recursive: true }).catch(() => {});
  }
});
