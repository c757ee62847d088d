/**
 * The pod runner against the Kubernetes API stand-in, as the node
 * ServiceAccount (so the manifests' RBAC applies): ZeroFS (its stand-in) runs
 * in a pod the stand-in kubelet starts, and readiness is proven by real 9P and
 * NBD handshakes through the host paths of the volume's state directory.
 *
 * Run as root: `deno test -A tests/integration/pod_runner_test.ts`.
 */

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import {
  checkReady,
  createKubeClient,
  type InstanceSpec,
  PodRunner,
  resolveSettings,
  volumePaths,
  ZeroFsNotReadyError,
  zerofsPodName,
} from "../../zerofs/mod.ts";
import { buildInstanceSpec } from "../../csi/mod.ts";
import {
  BASE_MANIFESTS_DIR,
  type KubeObject,
  type KubeStandin,
  startKubeStandin,
} from "../fixtures/kube/mod.ts";
import { STANDIN_BIN } from "../fixtures/zerofs_standin/mod.ts";
import { locateStore } from "../fixtures/zerofs_standin/store.ts";
import { listProcesses, type ProcessInfo } from "../helpers/node_env.ts";

const IMAGE = "zerofs-csi.test/zerofs-standin:2.3.0";
const NS = "zerofs";
const NODE = "node-a";
const NODE_SA = "zerofs/zerofs-csi-node";
const NODE_USER = "system:serviceaccount:zerofs:zerofs-csi-node";
/** Where the ZeroFS stand-in keeps its "buckets" when its env names none (pods get no such env). */
const STANDIN_STORE_ROOT = "/run/zerofs-csi/standin-store";
const PASSWORD = "pod-runner-test-password";

interface Fixture {
  api: KubeStandin;
  dir: string;
  stateRoot: string;
  bucket: string;
  runner: PodRunner;
  /** A fresh runner (as after an agent restart), same node and namespace. */
  newRunner(): PodRunner;
  spec(
    volumeId: string,
    configMap?: Record<string, string>,
    readOnly?: boolean,
  ): Promise<InstanceSpec>;
}

async function withFixture(fn: (f: Fixture) => Promise<void>): Promise<void> {
  const dir = `/run/zerofs-csi/test-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const bucket = `podrunner-${crypto.randomUUID().slice(0, 8)}`;
  const api = await startKubeStandin({
    manifestsDir: BASE_MANIFESTS_DIR,
    images: { [IMAGE]: STANDIN_BIN },
    nodeNames: [NODE],
    maxGracePeriodSeconds: 3,
    tempRoot: dir,
    seed: [
      secret("zerofs-encryption-password", { password: PASSWORD }),
      secret("zerofs-aws-credentials", { username: "user-key", password: "user-secret" }),
      secret("weak-password", { password: "short" }),
    ],
  });
  const stateRoot = join(dir, "state");
  const kube = await createKubeClient({ kubeconfig: api.kubeconfigFor(NODE_SA) });
  const newRunner = () => new PodRunner({ kube, namespace: NS, nodeName: NODE });
  const runner = newRunner();
  const fixture: Fixture = {
    api,
    dir,
    stateRoot,
    bucket,
    runner,
    newRunner,
    async spec(volumeId, configMap = {}, readOnly = false) {
      const settings = resolveSettings({
        parameters: {},
        configMap: {
          storageURL: `s3://${bucket}/volumes`,
          encryptionPasswordSecretName: "zerofs-encryption-password",
          awsCredentialsSecretName: "zerofs-aws-credentials",
          zerofsImage: IMAGE,
          cacheDiskSizeGB: "2",
          podReadyTimeoutSeconds: "60",
          ...configMap,
        },
      });
      const paths = volumePaths(stateRoot, volumeId);
      await Deno.mkdir(paths.dir, { recursive: true, mode: 0o700 });
      const version = await runner.version(settings);
      return buildInstanceSpec(runner, {
        volumeId,
        paths,
        readOnly,
        settings,
        secrets: {},
        version,
      });
    },
  };
  try {
    await fn(fixture);
    const denied = api.requests.filter((r) => r.user === NODE_USER && !r.allowed);
    assert.deepEqual(denied, [], "every request of the runner is allowed by the manifests");
  } finally {
    await api.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    // The bucket's directory in the stand-in's store (…/s3/<bucket>).
    const store = locateStore(`s3://${bucket}/volumes`, STANDIN_STORE_ROOT);
    await Deno.remove(dirname(store.dir), { recursive: true }).catch(() => {});
  }
}

function secret(name: string, stringData: Record<string, string>): KubeObject {
  return { apiVersion: "v1", kind: "Secret", metadata: { name, namespace: NS }, stringData };
}

function podOf(api: KubeStandin, name: string): KubeObject | undefined {
  return api.objects.find(api.typeOf("v1", "Pod"), NS, name);
}

function podCreates(api: KubeStandin): number {
  return api.requests.filter((r) =>
    r.user === NODE_USER && r.verb === "create" && r.resource === "pods" && r.allowed
  ).length;
}

/** The container's process (the stand-in kubelet's containerID is `standin://<pid>`) and its descendants. */
async function containerProcesses(pod: KubeObject): Promise<ProcessInfo[]> {
  const id: string = pod.status.containerStatuses[0].containerID;
  const root = Number(id.replace("standin://", ""));
  const all = await listProcesses();
  const found = all.filter((p) => p.pid === root);
  for (let grew = true; grew;) {
    grew = false;
    for (const p of all) {
      if (!found.includes(p) && found.some((f) => f.pid === p.ppid)) {
        found.push(p);
        grew = true;
      }
    }
  }
  return found;
}

async function stillRunning(ps: ProcessInfo[]): Promise<number[]> {
  const now = await listProcesses();
  return ps.filter((p) => now.some((n) => n.pid === p.pid && n.startTicks === p.startTicks))
    .map((p) => p.pid);
}

Deno.test("pod runner: ensure creates exactly this pod, ready through the host sockets; adopts; stop leaves nothing", async () => {
  await withFixture(async ({ api, runner, newRunner, spec: specFor }) => {
    const volumeId = "pvc-pod-runner-1";
    const spec = await specFor(volumeId, {
      rustLog: "info,zerofs=debug",
      cpuRequest: "250m",
      memoryLimit: "2Gi",
    });
    const name = zerofsPodName(volumeId, NODE);
    const status = await runner.ensure(spec);
    assert.equal(status.running, true);
    assert.equal(status.ready, true);
    assert.equal(status.podName, name);
    assert.equal(status.configHash, spec.configHash);

    const pod = podOf(api, name);
    assert.ok(pod, "the pod exists");
    assert.equal(pod.metadata.labels["app.kubernetes.io/name"], "zerofs");
    assert.equal(
      pod.metadata.labels["zerofs.csi.driver/volume-dir"],
      spec.stateDir.split("/").at(-1),
    );
    assert.equal(pod.metadata.labels["zerofs.csi.driver/node"], NODE);
    assert.equal(pod.metadata.annotations["zerofs.csi.driver/volume-id"], volumeId);
    assert.equal(pod.metadata.annotations["zerofs.csi.driver/config-hash"], spec.configHash);
    assert.match(pod.metadata.annotations["zerofs.csi.driver/pod-hash"], /^[0-9a-f]{64}$/);
    const { containers, volumes, ...podSpec } = pod.spec;
    assert.deepEqual(podSpec, {
      nodeName: NODE,
      restartPolicy: "Never",
      priorityClassName: "system-node-critical",
      terminationGracePeriodSeconds: 120,
      tolerations: [{ operator: "Exists" }],
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      securityContext: { seccompProfile: { type: "RuntimeDefault" } },
    });
    assert.deepEqual(volumes, [
      { name: "state", hostPath: { path: spec.stateDir, type: "Directory" } },
      { name: "cache", emptyDir: { sizeLimit: "3000M" } },
    ], "the state directory is the only hostPath; the cache an emptyDir with a limit");
    assert.equal(containers.length, 1);
    const ref = (name: string, key: string, optional?: boolean) => ({
      secretKeyRef: { name, key, ...(optional ? { optional } : {}) },
    });
    assert.deepEqual(containers[0], {
      name: "zerofs",
      image: IMAGE,
      args: ["run", "-c", "/zerofs/config.toml"],
      env: [
        {
          name: "ZEROFS_ENCRYPTION_PASSWORD",
          valueFrom: ref("zerofs-encryption-password", "password"),
        },
        { name: "AWS_ACCESS_KEY_ID", valueFrom: ref("zerofs-aws-credentials", "username", true) },
        {
          name: "AWS_ACCESS_KEY_ID",
          valueFrom: ref("zerofs-aws-credentials", "AWS_ACCESS_KEY_ID", true),
        },
        {
          name: "AWS_SECRET_ACCESS_KEY",
          valueFrom: ref("zerofs-aws-credentials", "password", true),
        },
        {
          name: "AWS_SECRET_ACCESS_KEY",
          valueFrom: ref("zerofs-aws-credentials", "AWS_SECRET_ACCESS_KEY", true),
        },
        { name: "RUST_LOG", value: "info,zerofs=debug" },
      ],
      resources: { requests: { cpu: "250m" }, limits: { memory: "2Gi" } },
      terminationMessagePolicy: "FallbackToLogsOnError",
      securityContext: {
        privileged: false,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ["ALL"] },
        readOnlyRootFilesystem: true,
        runAsUser: 0,
        runAsGroup: 0,
      },
      volumeMounts: [
        { name: "state", mountPath: "/zerofs" },
        { name: "cache", mountPath: "/cache" },
      ],
    });
    // config.toml: written by the runner, private, naming container paths and env references only.
    const configPath = join(spec.stateDir, "config.toml");
    assert.equal((await Deno.stat(configPath)).mode! & 0o777, 0o600);
    const config = await Deno.readTextFile(configPath);
    assert.equal(config, spec.configToml);
    assert.match(config, /unix_socket = "\/zerofs\/9p\.sock"/);
    assert.match(config, /dir = "\/cache"/);
    assert.ok(
      !config.includes(PASSWORD) && !config.includes("user-secret"),
      "no secret in config.toml",
    );
    // Real handshakes through the host paths (the sockets live in the hostPath).
    assert.deepEqual(await checkReady(spec, { timeoutMs: 2_000 }), { ready: true });
    const processes = await containerProcesses(pod);
    assert.ok(processes.length >= 3, `stand-in with diod and nbdkit: ${processes.length}`);

    // Same spec again, and from a new runner (an agent restart): adopted, not duplicated.
    const again = await runner.ensure(spec);
    assert.equal(again.ready, true);
    const adopted = await newRunner().ensure(spec);
    assert.equal(adopted.ready, true);
    assert.equal(podCreates(api), 1, "one pod created in all");
    assert.equal(podOf(api, name)?.metadata.uid, pod.metadata.uid);
    const st = await newRunner().status(volumeId, spec.stateDir);
    assert.deepEqual(
      { running: st.running, ready: st.ready, podName: st.podName, configHash: st.configHash },
      { running: true, ready: true, podName: name, configHash: spec.configHash },
    );

    await runner.stop(volumeId, spec.stateDir);
    assert.equal(podOf(api, name), undefined, "the pod is gone when stop returns");
    assert.deepEqual(await stillRunning(processes), [], "no process of the pod is left");
    await assert.rejects(Deno.lstat(spec.ninepSocket), Deno.errors.NotFound);
    await assert.rejects(Deno.lstat(spec.nbdSocket), Deno.errors.NotFound);
    await runner.stop(volumeId, spec.stateDir); // idempotent
    const after = await runner.status(volumeId, spec.stateDir);
    assert.equal(after.running, false);
    assert.equal(after.ready, false);
    assert.match(after.reason ?? "", /no ZeroFS pod zerofs\/zerofs-/);
    const deletes = api.requests.filter((r) => r.user === NODE_USER && r.verb === "delete");
    assert.equal(deletes.length, 1, "the second stop found nothing to delete");
  });
});

Deno.test("pod runner: a changed config replaces the pod, the old one gone before the new one exists", async () => {
  await withFixture(async ({ api, runner, spec: specFor }) => {
    const volumeId = "pvc-pod-runner-2";
    const name = zerofsPodName(volumeId, NODE);
    const first = await specFor(volumeId);
    await runner.ensure(first);
    const oldUid = podOf(api, name)!.metadata.uid;
    const oldProcesses = await containerProcesses(podOf(api, name));
    const second = await specFor(volumeId, { cacheMemorySizeGB: "0.5" });
    assert.notEqual(second.configHash, first.configHash);

    const status = await runner.ensure(second);
    assert.equal(status.ready, true);
    const now = podOf(api, name)!;
    assert.notEqual(now.metadata.uid, oldUid);
    assert.equal(now.metadata.annotations["zerofs.csi.driver/config-hash"], second.configHash);
    assert.match(
      await Deno.readTextFile(join(second.stateDir, "config.toml")),
      /memory_size_gb = 0\.5/,
    );
    assert.deepEqual(await stillRunning(oldProcesses), []);

    // The store's history: the old pod's removal precedes the new pod's creation.
    const history = api.objects.eventsSince(0).filter((e) => e.object?.metadata?.name === name);
    const removed = history.find((e) => e.type === "DELETED" && e.object.metadata.uid === oldUid);
    const added = history.find((e) =>
      e.type === "ADDED" && e.object.metadata.uid === now.metadata.uid
    );
    assert.ok(removed && added, "both events recorded");
    assert.ok(removed.resourceVersion < added.resourceVersion, "old pod gone before the new one");
    // And the requests: delete, then create, by the node agent.
    const verbs = api.requests
      .filter((r) =>
        r.user === NODE_USER && r.resource === "pods" && ["create", "delete"].includes(r.verb)
      )
      .map((r) => r.verb);
    assert.deepEqual(verbs, ["create", "delete", "create"]);
    await runner.stop(volumeId, second.stateDir);
    assert.equal(podOf(api, name), undefined);
  });
});

Deno.test("pod runner: a missing Secret fails within podReadyTimeoutSeconds, naming it; no pod is left", async () => {
  await withFixture(async ({ api, runner, spec: specFor }) => {
    const volumeId = "pvc-pod-runner-3";
    const spec = await specFor(volumeId, {
      encryptionPasswordSecretName: "no-such-secret",
      podReadyTimeoutSeconds: "2",
    });
    const started = Date.now();
    const err = await runner.ensure(spec).then(
      () => assert.fail("ensure succeeded without the Secret"),
      (e) => e,
    );
    const elapsed = Date.now() - started;
    assert.ok(err instanceof ZeroFsNotReadyError, String(err));
    assert.match(err.message, /did not start within 2000 ms/);
    assert.match(err.message, /CreateContainerConfigError \(secret "no-such-secret" not found\)/);
    assert.match(err.message, /kubectl logs -n zerofs zerofs-/);
    assert.ok(elapsed >= 2_000 && elapsed < 8_000, `failed after ${elapsed} ms`);
    assert.equal(podOf(api, zerofsPodName(volumeId, NODE)), undefined, "the failed pod is removed");
  });
});

Deno.test("pod runner: ZeroFS exiting at start fails fast with its last log lines", async () => {
  await withFixture(async ({ api, runner, spec: specFor }) => {
    const volumeId = "pvc-pod-runner-4";
    const spec = await specFor(volumeId, { encryptionPasswordSecretName: "weak-password" });
    const started = Date.now();
    const err = await runner.ensure(spec).then(
      () => assert.fail("ensure succeeded with a weak password"),
      (e) => e,
    );
    assert.ok(err instanceof ZeroFsNotReadyError, String(err));
    assert.match(err.message, /container exited with code 1/);
    assert.match(err.logTail, /✗ Error: .*encryption_password must be at least 8 characters/s);
    assert.ok(Date.now() - started < 30_000, "long before the 60 s ready timeout");
    assert.equal(podOf(api, zerofsPodName(volumeId, NODE)), undefined, "the failed pod is removed");
  });
});
