/**
 * The controller as it is deployed: `main.ts` under exactly the runtime flags
 * of its release binary (deno.json's `compile:controller`), started with the
 * rendered Deployment's arguments and environment, in a private root that has
 * what the pod has and nothing else: each of the container's volume mounts
 * (emptyDirs) at its mount path, the ServiceAccount token that Kubernetes
 * mounts, a read-only root filesystem when the container asks for one, and the
 * container's uid/gid without capabilities or new privileges. It reaches a
 * real Kubernetes API server (tests/fixtures/kube_cluster.ts, holding the base
 * manifests applied with kubectl) in-cluster: KUBERNETES_SERVICE_HOST/PORT, a
 * token the API server issued to its ServiceAccount and the cluster's ca.crt.
 * It reaches the object store (MinIO) through the Secret the ConfigMap names.
 *
 * Then the same flags in the same root are refused what lies outside the
 * controller's permission set, told apart from the operating system's own
 * refusals.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { runTool } from "../../blockdev/run.ts";
import { DEFAULT_STATE_DIR } from "../../csi/mod.ts";
import { startKubeCluster } from "../fixtures/kube_cluster.ts";
import { BASE_MANIFESTS_DIR, type KubeObject, renderObjects } from "../helpers/manifests.ts";
import {
  applyObjects,
  auditedOnce,
  auditedRequests,
  serviceAccountToken,
} from "../helpers/cluster_setup.ts";
import { serviceAccountUser } from "../helpers/rbac_rules.ts";
import { startS3 } from "../fixtures/s3.ts";
import { BUCKET, listKeys, MOUNT_CAP, rawClient } from "../helpers/controller_s3.ts";
import { makeTestDir, releaseFlags, REPO_ROOT, startDriver } from "../helpers/driver.ts";

const DEPLOYMENT = "zerofs-csi-controller";
const CONTAINER = "zerofs-csi";
/** Where Kubernetes mounts a pod's ServiceAccount token (automountServiceAccountToken). */
const SA_TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
/**
 * Where EKS's pod identity webhook mounts the web-identity token of IRSA
 * (AWS_WEB_IDENTITY_TOKEN_FILE), which the AWS SDK's default chain reads.
 */
const IRSA_TOKEN_DIR = "/var/run/secrets/eks.amazonaws.com/serviceaccount";
/** Workloads: no kubelet runs them here; the test runs the controller itself. */
const WORKLOAD_KINDS = new Set(["Deployment", "DaemonSet"]);

/** The controller container as deployed: argv, environment, mounts, identity. */
interface DeployedController {
  args: string[];
  env: Record<string, string>;
  /** mountPath of each emptyDir the container mounts. */
  emptyDirs: string[];
  /** The socket path from `--endpoint`, inside the container. */
  socket: string;
  uid: number;
  gid: number;
  readOnlyRoot: boolean;
  mountsServiceAccountToken: boolean;
  /** The pod's ServiceAccount. */
  serviceAccount: { namespace: string; name: string };
}

/** Read the driver container of the rendered controller Deployment. */
function deployedController(manifests: KubeObject[]): DeployedController {
  const deploy = manifests.find((o) => o.kind === "Deployment" && o.metadata.name === DEPLOYMENT);
  assert(deploy, `no Deployment ${DEPLOYMENT}`);
  const pod = deploy.spec.template.spec;
  const c = pod.containers.find((c: KubeObject) => c.name === CONTAINER);
  assert(c, `no container ${CONTAINER} in ${DEPLOYMENT}`);
  const namespace = deploy.metadata.namespace;
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.fieldRef?.fieldPath === "metadata.namespace") env[e.name] = namespace;
    else assert.fail(`env ${e.name}: a source this test does not provide`);
  }
  const expand = (s: string) =>
    s.replace(/\$\((\w+)\)/g, (_, v: string) => {
      assert(v in env, `${s} refers to $(${v}), which the container does not define`);
      return env[v];
    });
  const args: string[] = (c.args as string[]).map(expand);
  const volumes = new Map(pod.volumes.map((v: KubeObject) => [v.name, v]));
  const emptyDirs = (c.volumeMounts ?? []).map((m: KubeObject) => {
    assert((volumes.get(m.name) as KubeObject)?.emptyDir, `${m.mountPath} is not an emptyDir`);
    return m.mountPath as string;
  });
  const endpoint = args[args.indexOf("--endpoint") + 1];
  assert(endpoint?.startsWith("unix://"), `--endpoint ${endpoint}`);
  const security = { ...pod.securityContext, ...c.securityContext };
  assert(Number.isInteger(security.runAsUser), "the container names its uid");
  const sa = manifests.find((o) =>
    o.kind === "ServiceAccount" && o.metadata.name === pod.serviceAccountName
  );
  return {
    args,
    env,
    emptyDirs,
    socket: endpoint.slice("unix://".length),
    uid: security.runAsUser,
    gid: security.runAsGroup ?? security.runAsUser,
    readOnlyRoot: security.readOnlyRootFilesystem === true,
    mountsServiceAccountToken: (pod.automountServiceAccountToken ??
      sa?.automountServiceAccountToken) !== false,
    serviceAccount: { namespace, name: pod.serviceAccountName ?? "default" },
  };
}

/**
 * argv that builds a private root in a new mount namespace and execs the rest
 * of the command line in it as `uid:gid`, with no capabilities and no new
 * privileges: the host's /usr, /etc, /proc, /dev, /sys, the repository and the
 * Deno cache (read-only) stand in for the image; `binds` maps host directories
 * to paths inside; nothing else of the host is there. `readOnly` remounts
 * everything but the binds read-only.
 */
function privateRootLauncher(o: {
  root: string;
  binds: Array<{ host: string; path: string }>;
  denoDir: string;
  uid: number;
  gid: number;
  readOnly: boolean;
  env: Record<string, string>;
}): string[] {
  const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
  const R = q(o.root);
  const image = ["/usr", "/etc", REPO_ROOT.replace(/\/$/, "")];
  const lines = [
    "set -eu",
    `mount -t tmpfs -o mode=0755 rootfs ${R}`,
    ...["/proc", "/dev", "/sys", ...image].flatMap((d) => [
      `mkdir -p ${R}${q(d)}`,
      `mount --rbind ${q(d)} ${R}${q(d)}`,
    ]),
    // Merged /usr: bin, lib, lib64, sbin are links; /var/run is /run (relative, so the
    // paths below resolve inside the new root).
    `for l in bin lib lib64 sbin; do [ -L /$l ] && ln -s "$(readlink /$l)" ${R}/$l; done`,
    `mkdir -p ${R}/run ${R}/var ${R}/deno-dir && ln -s ../run ${R}/var/run`,
    `mount --bind ${q(o.denoDir)} ${R}/deno-dir`,
    ...o.binds.flatMap((b) => [
      `mkdir -p ${R}${q(b.path)}`,
      `mount --bind ${q(b.host)} ${R}${q(b.path)}`,
    ]),
    `mount -o remount,bind,ro ${R}/deno-dir`,
    ...(o.readOnly
      ? [...image.map((d) => `mount -o remount,bind,ro ${R}${q(d)}`), `mount -o remount,ro ${R}`]
      : []),
    `exec chroot ${R} setpriv --reuid=${o.uid} --regid=${o.gid} --clear-groups ` +
    `--no-new-privs --inh-caps=-all --bounding-set=-all env -i ` +
    Object.entries({ ...o.env, DENO_DIR: "/deno-dir" }).map(([k, v]) => q(`${k}=${v}`)).join(" ") +
    ` "$@"`,
  ];
  return ["unshare", "--mount", "--propagation", "private", "sh", "-c", lines.join("\n"), "sh"];
}

/** The host directory bound at `path` (the longest bind that contains it) and the rest. */
function hostPathOf(binds: Array<{ host: string; path: string }>, path: string): string {
  const b = binds.filter((b) => path === b.path || path.startsWith(b.path + "/"))
    .sort((x, y) => y.path.length - x.path.length)[0];
  assert(b, `${path} is in none of the mounts`);
  return b.host + path.slice(b.path.length);
}

Deno.test("controller: deployed arguments, in-cluster, under its release permission set", async (t) => {
  const dir = await makeTestDir();
  const s3 = await startS3();
  const client = rawClient(s3);
  const manifests = await renderObjects(BASE_MANIFESTS_DIR);
  const deployed = deployedController(manifests);
  const stops: Array<() => Promise<void>> = [];
  try {
    await s3.createBucket(BUCKET);
    const namespace = deployed.env.POD_NAMESPACE;
    assert.equal(namespace, deployed.serviceAccount.namespace);
    const objects = manifests.filter((o) => !WORKLOAD_KINDS.has(o.kind))
      .map((o) => structuredClone(o));
    const defaultCm = deployed.args.find((a) => a.startsWith("--default-config-map="))!
      .split("=")[1];
    const cm = objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === defaultCm);
    Object.assign(cm.data, {
      storageURL: `s3://${BUCKET}/deployed`,
      awsEndpoint: s3.endpoint,
      awsAllowHTTP: "true",
    });
    const secret = objects.find((o) =>
      o.kind === "Secret" && o.metadata.name === cm.data.awsCredentialsSecretName
    );
    secret.stringData = {
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    };
    const cluster = await startKubeCluster({ auditNamespace: namespace });
    stops.push(() => cluster.stop());
    console.log(`control plane ready in ${cluster.startMs} ms`);
    await applyObjects(cluster, objects);
    const saUser = serviceAccountUser(namespace, deployed.serviceAccount.name);
    const token = await serviceAccountToken(cluster, namespace, deployed.serviceAccount.name);
    const apiPort = new URL(cluster.server).port;

    // What the kubelet gives the pod: each emptyDir (world-writable, like the
    // kubelet's), the ServiceAccount token, and here also an IRSA token.
    const binds: Array<{ host: string; path: string }> = [];
    for (const path of deployed.emptyDirs) {
      const host = await Deno.makeTempDir({ dir, prefix: "emptydir-" });
      await Deno.chmod(host, 0o777);
      binds.push({ host, path });
    }
    assert(deployed.mountsServiceAccountToken, "the controller needs its token for the API");
    const saDir = await Deno.makeTempDir({ dir, prefix: "sa-" });
    await Deno.chmod(saDir, 0o755);
    for (
      const [name, text] of [
        ["token", token],
        ["ca.crt", await Deno.readTextFile(cluster.caCertPath)],
        ["namespace", namespace],
      ]
    ) {
      await Deno.writeTextFile(join(saDir, name), text, { mode: 0o644 });
    }
    binds.push({ host: saDir, path: SA_TOKEN_DIR });
    const irsaDir = await Deno.makeTempDir({ dir, prefix: "irsa-" });
    await Deno.chmod(irsaDir, 0o755);
    await Deno.writeTextFile(join(irsaDir, "token"), "web-identity", { mode: 0o644 });
    binds.push({ host: irsaDir, path: IRSA_TOKEN_DIR });

    const rootDir = await Deno.makeTempDir({ dir, prefix: "root-" });
    const launcher = (root: string) =>
      privateRootLauncher({
        root,
        binds,
        denoDir: Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`,
        uid: deployed.uid,
        gid: deployed.gid,
        readOnly: deployed.readOnlyRoot,
        env: {
          ...deployed.env,
          PATH: "/usr/local/bin:/usr/bin:/bin",
          KUBERNETES_SERVICE_HOST: "127.0.0.1",
          KUBERNETES_SERVICE_PORT: apiPort,
          NO_COLOR: "1",
        },
      });
    const socketOnHost = hostPathOf(binds, deployed.socket);

    await t.step(
      "serves CreateVolume and DeleteVolume with the Deployment's arguments",
      async () => {
        const driver = await startDriver({
          mode: "controller",
          args: deployed.args.slice(1),
          launcher: launcher(rootDir),
          clientSocketPath: socketOnHost,
        });
        stops.push(async () => void await driver.stop());
        assert.equal(deployed.args[0], "controller");
        assert.match(driver.output(), /"msg":"settings sources".*"api":"in-cluster"/);
        const c = driver.client.controller;
        const res = await c.CreateVolume({
          name: "pvc-deployed-1",
          volume_capabilities: [MOUNT_CAP],
          parameters: { configMapName: defaultCm },
        });
        assert.equal(res.volume.volume_id, "pvc-deployed-1");
        const record = `deployed/.zerofs-csi-volumes/pvc-deployed-1.json`;
        assert.deepEqual(await listKeys(client, record), [record], "record in the object store");
        const i = deployed.args.indexOf("--state-dir");
        const stateDir = i > 0 ? deployed.args[i + 1] : DEFAULT_STATE_DIR;
        assert(
          deployed.emptyDirs.includes(stateDir),
          `the state directory ${stateDir} is not writable`,
        );
        const local = await Array.fromAsync(
          Deno.readDir(join(hostPathOf(binds, stateDir), "controller", "volumes")),
        );
        assert.deepEqual(local.map((e) => e.name), ["pvc-deployed-1.json"], "local record");
        assert.deepEqual(await c.DeleteVolume({ volume_id: "pvc-deployed-1" }), {});
        assert.deepEqual(await listKeys(client, record), []);
        await auditedOnce(
          cluster,
          saUser,
          (r) =>
            r.verb === "get" && r.resource === "secrets" && r.namespace === namespace &&
            r.name === secret.metadata.name && r.decision === "allow" && r.code === 200,
          "get the Secret the ConfigMap names",
        );
        assert.equal(await driver.stop(), 0);
        const denied = (await auditedRequests(cluster, saUser))
          .filter((r) => r.decision !== "allow" || r.code === 403);
        assert.deepEqual(denied, [], "requests the API server's RBAC refused");
        assert.doesNotMatch(driver.output(), /NotCapable|Requires \w+ access/);
      },
    );

    // Each outside access is possible for the container's uid in that root (world-
    // readable files, an existing program and library): only a permission set refuses.
    const outside = [
      "read:/etc/passwd",
      `read:${REPO_ROOT}deno.json`,
      "read:/proc/self/mountinfo",
      "run:/usr/bin/true",
      "ffi:/lib/x86_64-linux-gnu/libc.so.6",
    ];
    const inside = [
      ...deployed.emptyDirs.flatMap((p) => [`read:${p}`, `write:${p}`]),
      `read:${SA_TOKEN_DIR}/token`,
      `read:${IRSA_TOKEN_DIR}/token`,
    ];
    const probe = async (flags: string[], accesses: string[]) => {
      const [program, ...args] = launcher(await Deno.makeTempDir({ dir, prefix: "root-" }));
      const out = await runTool(program, [
        ...args,
        Deno.execPath(),
        "run",
        ...flags,
        "--config",
        join(REPO_ROOT, "deno.json"),
        join(REPO_ROOT, "tests/helpers/permission_probe.ts"),
        ...accesses,
      ], { timeoutMs: 60_000 });
      return Object.fromEntries(
        out.stdout.trim().split("\n").map((l) => JSON.parse(l)).map((r) => [r.access, r.outcome]),
      );
    };

    await t.step(
      "the same flags allow the pod's mounts and tokens, and refuse the rest",
      async () => {
        const outcomes = await probe(releaseFlags("controller"), [...inside, ...outside]);
        for (const access of inside) assert.equal(outcomes[access], "ok", access);
        for (const access of outside) assert.equal(outcomes[access], "NotCapable", access);
      },
    );

    await t.step("with every permission, the same uid in the same root gets the rest", async () => {
      const outcomes = await probe(["-A"], outside);
      for (const access of outside) assert.equal(outcomes[access], "ok", access);
    });
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    client.destroy();
    await s3.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the run tasks and the tests use the release binaries' flags", () => {
  const config = JSON.parse(Deno.readTextFileSync(join(REPO_ROOT, "deno.json")));
  for (const mode of ["controller", "node"] as const) {
    assert.equal(
      config.tasks[mode],
      ["deno run", ...releaseFlags(mode), "main.ts", mode].join(" "),
      `deno task ${mode} runs with other flags than compile:${mode}`,
    );
  }
  const controllerSet = config.permissions.controller;
  assert.notEqual(controllerSet.all, true, "the controller's set is an allowlist");
  assert.equal(controllerSet.run, false);
  assert.equal(controllerSet.ffi, false);
});
