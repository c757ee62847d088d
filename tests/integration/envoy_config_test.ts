/**
 * The example Envoy config shipped as the kustomize component
 * `manifests/components/envoy`, checked against Envoy's v3 API by
 * `envoy-config-check` (tools/envoy-config-check: go-control-plane's
 * generated types and protoc-gen-validate rules, installed by
 * `bash .ci/install`). Envoy itself never runs on these machines: this schema
 * check and the pod-spec tests in zerofs/pod_runner_test.ts are all the
 * sidecar gets.
 *
 * The last test has PodRunner create a ZeroFS pod with the sidecar, as the
 * node's ServiceAccount, on a real Kubernetes API server
 * (tests/fixtures/kube_cluster.ts) with manifests/base's RBAC and
 * ValidatingAdmissionPolicies applied. No kubelet runs: the pod never starts.
 *
 * Run (as root): `deno test -A tests/integration/envoy_config_test.ts`.
 */

import { dryRunAdmitted, waitUntilTrue } from "../helpers/cluster_setup.ts";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import * as kubeSdk from "@kubernetes/client-node";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { dump, load } from "js-yaml";
import { runTool } from "../../blockdev/mod.ts";
import { BASE_MANIFESTS_DIR, type KubeObject, renderObjects } from "../helpers/manifests.ts";
import {
  type KubeCluster,
  startKubeCluster,
  writeTokenKubeconfig,
} from "../fixtures/kube_cluster.ts";
import {
  PodRunner,
  renderConfigToml,
  resolveSettings,
  resolveVolumeLocation,
  volumePaths,
  ZeroFsNotReadyError,
  zerofsPodName,
} from "../../zerofs/mod.ts";
import { createKubeClient } from "../../kube/mod.ts";
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

const NS = "zerofs";
const NODE_SA = "zerofs-csi-node";
const NODE_USER = `system:serviceaccount:${NS}:${NODE_SA}`;
/** The ValidatingAdmissionPolicy's parameters (manifests/base/driver/node-pod-policy.yaml). */
const POLICY_PARAMS = "zerofs-csi-node-pods";
const KUBECTL_TIMEOUT_MS = 60_000;
const UNDICI_IDLE_CLOSE_MS = 5_000;

/** The one place this test runs kubectl; `stdin` carries objects (never a token). */
async function kubectl(kubeconfig: string, args: string[], stdin?: unknown) {
  return await runTool("kubectl", ["--kubeconfig", kubeconfig, ...args], {
    timeoutMs: KUBECTL_TIMEOUT_MS,
    stdin: stdin === undefined ? undefined : new TextEncoder().encode(JSON.stringify(stdin)),
  });
}

/**
 * A kubeconfig (mode 0600) with a fresh node ServiceAccount token bound to `pod`, so
 * the token carries that pod's node (the claim the admission policy keys on). The
 * token goes from kubectl's stdout into the file, never into argv.
 */
async function nodeTokenKubeconfig(cluster: KubeCluster, pod: string): Promise<string> {
  const { stdout } = await kubectl(cluster.kubeconfig, [
    "create",
    "token",
    NODE_SA,
    "-n",
    NS,
    "--duration=30m",
    "--bound-object-kind",
    "Pod",
    "--bound-object-name",
    pod,
  ]);
  const token = stdout.trim();
  assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, "kubectl create token did not print a JWT");
  return await writeTokenKubeconfig(cluster, `${NODE_SA}-${pod}`, token);
}

/** The pod as the API server stores it (plain JSON, as kubectl prints it), or undefined. */
async function storedPod(cluster: KubeCluster, name: string): Promise<KubeObject | undefined> {
  const { stdout } = await kubectl(cluster.kubeconfig, [
    "get",
    "pod",
    name,
    "-n",
    NS,
    "-o",
    "json",
    "--ignore-not-found",
  ]);
  return stdout.trim() ? JSON.parse(stdout) : undefined;
}

Deno.test("envoy sidecar: the node account creates the pod with it through the API, and the fencing warning is logged", async () => {
  const cluster = await startKubeCluster();
  console.log(`control plane ready in ${cluster.startMs} ms (${cluster.server})`);
  await Deno.mkdir("/run/zerofs-csi", { recursive: true });
  const stateRoot = await Deno.makeTempDir({ dir: "/run/zerofs-csi", prefix: "envoy-pod-" });
  const logged: Array<{ level: string; msg: string }> = [];
  try {
    // The real RBAC and ValidatingAdmissionPolicies, the Envoy component's ConfigMap, a
    // Node and a pod of the node's account on it (its token then names node-a).
    await kubectl(cluster.kubeconfig, ["apply", "-k", BASE_MANIFESTS_DIR]);
    await kubectl(cluster.kubeconfig, ["apply", "-f", "-"], {
      apiVersion: "v1",
      kind: "List",
      items: [
        { apiVersion: "v1", kind: "Node", metadata: { name: "node-a" } },
        {
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name: "envoy-config", namespace: NS },
          data: { "envoy.yaml": await Deno.readTextFile(EXAMPLE) },
        },
        {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: "agent-a", namespace: NS },
          spec: {
            nodeName: "node-a",
            serviceAccountName: NODE_SA,
            containers: [{ name: "agent", image: "zerofs-csi.test/placeholder:1" }],
          },
        },
      ],
    });
    // The policy admits only hostPaths under the agent's --state-dir: this test's.
    await kubectl(cluster.kubeconfig, [
      "patch",
      "configmap",
      POLICY_PARAMS,
      "-n",
      NS,
      "--type=merge",
      "-p",
      JSON.stringify({ data: { stateDir: stateRoot } }),
    ]);
    const node = await createKubeClient({
      kubeconfig: await nodeTokenKubeconfig(cluster, "agent-a"),
    });
    const admin = await createKubeClient({ kubeconfig: cluster.kubeconfig });
    const cm = await admin.core.readNamespacedConfigMap({ name: "zerofs-default", namespace: NS });
    const settings = resolveSettings({
      parameters: { configMapName: "zerofs-default" },
      // The shortest ready timeout: see below.
      configMap: { ...cm.data, envoyEnabled: "true", podReadyTimeoutSeconds: "1" },
    });
    const runner = new PodRunner({
      kube: node,
      namespace: NS,
      nodeName: "node-a",
      log: { log: (level, msg) => logged.push({ level, msg }) },
    });
    const volumeId = "pvc-envoy-1";
    const paths = volumePaths(stateRoot, volumeId);
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
    const desired = runner.podFor(spec);
    assert.equal(desired.spec?.initContainers?.[0]?.image, settings.envoyImage);

    // The policies are in force before the runner creates: a sidecar of another image
    // is refused, the runner's own pod (with this test's state root) admitted.
    const otherSidecar = structuredClone(desired);
    otherSidecar.spec!.initContainers![0].image = "docker.io/library/busybox:1.36";
    await waitUntilTrue(
      "the policy refuses another sidecar image",
      async () =>
        !(await dryRunAdmitted(node, NS, otherSidecar)) && await dryRunAdmitted(node, NS, desired),
    );

    // ensure() is the runner's only path that creates a pod (and logs the warning);
    // it then waits for the pod to run. No kubelet runs here and no Envoy binary or
    // image can be had on this machine, so the pod never starts: with a 1 s ready
    // timeout the runner deletes it and ensure() throws ZeroFsNotReadyError. Shown:
    // the node account's create through the runner, admitted by the real RBAC and
    // admission policies, the stored spec, and the warning. Not shown: Envoy starting
    // as a native sidecar before ZeroFS, or ZeroFS reaching S3 through it.
    const name = zerofsPodName(volumeId, "node-a");
    const ensured = runner.ensure(spec).then(
      () => assert.fail("a pod without a kubelet became ready"),
      (e: unknown) => e,
    );
    let stored: KubeObject | undefined;
    await waitUntilTrue("the runner creates its pod and, not ready, deletes it", async () => {
      const pod = await storedPod(cluster, name);
      stored ??= pod;
      return Boolean(pod?.metadata?.deletionTimestamp);
    });
    // The deletion the kubelet would have confirmed.
    await kubectl(cluster.kubeconfig, [
      "delete",
      "pod",
      name,
      "-n",
      NS,
      "--grace-period=0",
      "--force",
    ]);
    const error = await ensured;
    assert(error instanceof ZeroFsNotReadyError, String(error));

    assert.ok(stored, `pod ${name} was never seen`);
    assert.equal(stored.spec.initContainers[0].restartPolicy, "Always");
    // Exactly as the runner built it, plus the three fields the API server defaults.
    const serverDefaults = {
      imagePullPolicy: "IfNotPresent",
      resources: {},
      terminationMessagePath: "/dev/termination-log",
    };
    assert.deepEqual(
      stored.spec.initContainers,
      desired.spec!.initContainers!.map((c) => ({ ...serverDefaults, ...c })),
    );
    assert.deepEqual(
      logged.filter((l) => l.msg === ENVOY_FENCING_WARNING).map((l) => l.level),
      ["warn"],
    );
    assert.match(ENVOY_FENCING_WARNING, /retries can break ZeroFS's fencing guarantees/);
    const audit = (await Deno.readTextFile(cluster.auditLogPath)).split("\n").filter(Boolean)
      .map((l) => JSON.parse(l))
      .filter((e) =>
        e.stage === "ResponseComplete" && e.user.username === NODE_USER &&
        e.objectRef?.resource === "pods" && e.objectRef?.name === name &&
        !e.requestURI.includes("dryRun")
      );
    const verbs = audit.map((e) => `${e.verb} ${e.responseStatus?.code}`);
    assert(verbs.includes("create 201"), verbs.join());
    assert.deepEqual(
      verbs.filter((v) => !/ 20[01]$/.test(v)),
      [],
      "a request of the node was refused",
    );
  } finally {
    // undici (client-node's HTTP client) keeps HTTP/2 sessions to the API server, and
    // Deno 2.9.6's nghttp2 crashed the test process when a stopping server sent GOAWAY
    // on open sessions (tests/e2e/node_pod_policy_test.ts). Stop after they closed.
    await new Promise((r) => setTimeout(r, UNDICI_IDLE_CLOSE_MS));
    await cluster.stop();
    await Deno.remove(stateRoot, { recursive: true });
  }
});
