/**
 * The node agent in pod mode (`main.ts node --runner pod`, a host process) on a
 * real Kubernetes (tests/helpers/kube_node_setup.ts): the real ZeroFS 0.16.2
 * runs in one pod per volume on a real kubelet + containerd node, against
 * MinIO; settings come from the ConfigMap through the API server; the agent
 * authenticates with its ServiceAccount's token bound to a pod on the node, so
 * the manifests' RBAC and node-pod admission policies judge every request
 * (read back from the API server's audit log).
 *
 * One kubelet per machine: never run this beside another kubelet test.
 * Run as root: `deno test -A tests/e2e/node_pod_lifecycle_test.ts`.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { status as grpcStatus } from "@grpc/grpc-js";
import { findMountByTarget } from "../../blockdev/mod.ts";
import { zerofsPodName } from "../../zerofs/mod.ts";
import { makeTestDir, type RunningDriver, startDriver } from "../helpers/driver.ts";
import {
  assertNothingLeft,
  isStillRunning,
  listProcesses,
  type NodeEnvironment,
  type ProcessInfo,
  removeLeftoversUnder,
  unstageThroughLiveAgent,
} from "../helpers/node_env.ts";
import {
  assertContent,
  createVolume,
  expectCode,
  nodeRequests,
  randomBytes,
  writeFileSynced,
} from "../helpers/volume_steps.ts";
import {
  type AuditedRequest,
  containerProcesses,
  eventually,
  type KubeNodeSetup,
  NODE,
  NS,
  startKubeNodeSetup,
  ZEROFS_IMAGE,
} from "../helpers/kube_node_setup.ts";

const BUCKET = "podnode";
const GiB = 1024 ** 3;
const SECRETS = {
  password: "zerofs-encryption-password",
  aws: "zerofs-aws-credentials",
};

interface PodEnv {
  kube: KubeNodeSetup;
  dir: string;
  stateDir: string;
  kubeletDir: string;
  controller: RunningDriver;
  node: RunningDriver;
  startNode(): Promise<RunningDriver>;
  /** The shape the node_env helpers (leftover checks) expect. */
  asNodeEnvironment(): NodeEnvironment;
}

/** One cluster, node and S3 for the file; the ConfigMaps and Secrets the steps use. */
interface Shared {
  kube: KubeNodeSetup;
  dir: string;
  stateDir: string;
  kubeletDir: string;
  settings: Record<string, string>;
}

async function startShared(): Promise<Shared> {
  const dir = await makeTestDir();
  const stateDir = join(dir, "state");
  const kubeletDir = join(dir, "kubelet");
  await Deno.mkdir(stateDir, { recursive: true, mode: 0o700 });
  await Deno.mkdir(kubeletDir, { recursive: true });
  try {
    const kube = await startKubeNodeSetup({
      stateRoot: stateDir,
      secretNames: Object.values(SECRETS),
    });
    try {
      const s3 = kube.s3;
      await s3.createBucket(BUCKET);
      const settings = {
        storageURL: `s3://${BUCKET}/volumes`,
        awsEndpoint: s3.endpoint,
        awsAllowHTTP: "true",
        encryptionPasswordSecretName: SECRETS.password,
        awsCredentialsSecretName: SECRETS.aws,
        zerofsImage: ZEROFS_IMAGE,
        cacheDiskSizeGB: "1",
        // A loaded 2-core machine: never what a stage waits for.
        podReadyTimeoutSeconds: "300",
      };
      await kube.apply(
        { apiVersion: "v1", kind: "Namespace", metadata: { name: "apps" } },
        configMap("zerofs-default", settings),
        configMap("zerofs-badkey", { ...settings, cacheDiskSizeGb: "1" }),
        secret(SECRETS.password, { password: "node-pod-test-password" }),
        secret(SECRETS.aws, {
          AWS_ACCESS_KEY_ID: s3.accessKeyId,
          AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
        }),
      );
      return { kube, dir, stateDir, kubeletDir, settings };
    } catch (e) {
      await kube.stop();
      throw e;
    }
  } catch (e) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw e;
  }
}

async function stopShared(shared: Shared): Promise<void> {
  await forceCleanUp(shared.dir);
  await shared.kube.stop();
  await Deno.remove(shared.dir, { recursive: true }).catch(() => {});
}

/** A controller and a node agent (pod runner) for one step; every volume unstaged after. */
async function withPodEnv(shared: Shared, fn: (env: PodEnv) => Promise<void>): Promise<void> {
  const { kube, dir, stateDir, kubeletDir, settings } = shared;
  const podEnv = {} as PodEnv;
  let controller: RunningDriver | undefined;
  try {
    // The controller sees the same ConfigMap as the node (as through the API in a
    // cluster): it pins the volume's location and Secret names from it.
    const controllerSettings = join(dir, "controller.toml");
    await Deno.writeTextFile(
      controllerSettings,
      [
        `[configMaps.zerofs-default]`,
        ...Object.entries(settings).map(([k, v]) => `${k} = ${JSON.stringify(v)}`),
        ``,
      ].join("\n"),
    );
    const env = {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HOME: Deno.env.get("HOME") ?? "/root",
    };
    controller = await startDriver({
      mode: "controller",
      args: [
        "--endpoint",
        `unix://${dir}/controller.sock`,
        "--state-dir",
        join(dir, "controller"),
        "--config-source",
        "file",
        "--settings-file",
        controllerSettings,
      ],
      env,
    });
    const startNode = async () => {
      podEnv.node = await startDriver({
        mode: "node",
        args: [
          "--endpoint",
          `unix://${dir}/node.sock`,
          "--node-id",
          NODE,
          "--state-dir",
          stateDir,
          "--kubelet-dir",
          kubeletDir,
          "--attach-mode",
          "auto",
          "--runner",
          "pod",
          "--kubeconfig",
          kube.nodeKubeconfig,
          "--namespace",
          NS,
        ],
        env,
      });
      return podEnv.node;
    };
    Object.assign(podEnv, {
      kube,
      dir,
      stateDir,
      kubeletDir,
      controller,
      startNode,
      asNodeEnvironment: () => ({
        ...podEnv,
        s3: kube.s3,
        restartNode: startNode,
        stop: async () => {},
      }),
    });
    await startNode();
    await fn(podEnv);
    const denied = (await kube.nodeRequests()).filter((r) =>
      !r.dryRun && (r.decision !== "allow" || r.code === 403 || r.code === 422)
    );
    assert.deepEqual(denied, [], "every request of the node agent is allowed by the manifests");
  } finally {
    if (podEnv.node) await cleanUpVolumes(podEnv).catch((e) => console.error(`cleanup: ${e}`));
    await podEnv.node?.stop().catch(() => {});
    await controller?.stop().catch(() => {});
  }
}

function configMap(name: string, data: Record<string, string>) {
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: NS }, data };
}

function secret(name: string, stringData: Record<string, string>) {
  return { apiVersion: "v1", kind: "Secret", metadata: { name, namespace: NS }, stringData };
}

function podOf(env: PodEnv, volumeId: string) {
  return env.kube.pod(zerofsPodName(volumeId, NODE));
}

function count(requests: AuditedRequest[], verb: string, resource: string): number {
  return requests.filter((r) => r.verb === verb && r.resource === resource && !r.dryRun).length;
}

/** Every process serving the volume: its ZeroFS container's and the node's attach helper. */
async function volumeProcesses(env: PodEnv, volumeId: string): Promise<ProcessInfo[]> {
  const pod = await podOf(env, volumeId);
  assert.ok(pod, `no ZeroFS pod for ${volumeId}`);
  const found = await containerProcesses(pod, "zerofs");
  assert.ok(
    found.some((p) => p.argv.slice(1).join(" ") === "run -c /zerofs/config.toml"),
    `the real ZeroFS runs in the pod: ${JSON.stringify(found.map((p) => p.argv))}`,
  );
  const all = await listProcesses();
  found.push(...all.filter((p) => p.argv.some((a) => a.startsWith(env.stateDir + "/"))));
  return found;
}

/** Step 1. */
function ext4Life(shared: Shared): Promise<void> {
  return withPodEnv(shared, async (env) => {
    const name = "pvc-pod-life";
    const volume = await createVolume(env.controller.client, {
      name,
      kind: "ext4",
      sizeBytes: GiB,
      parameters: { configMapName: "zerofs-default", preflight: "false" },
    });
    const req = nodeRequests(volume, { kind: "ext4", kubeletDir: env.kubeletDir });
    const data = randomBytes(256 * 1024 + 17);
    const dataPath = join(req.target, "data.bin");

    await env.node.client.node.NodeStageVolume(req.stage);
    const first = await podOf(env, name);
    assert.equal(first?.status?.phase, "Running", "ZeroFS runs as a pod");
    assert.equal(first.spec?.nodeName, NODE);
    assert.equal(first.metadata?.annotations?.["zerofs.csi.driver/volume-id"], name);
    assert.equal((await findMountByTarget(req.staging))?.fsType, "ext4");
    await env.node.client.node.NodePublishVolume(req.publish);
    await writeFileSynced(dataPath, data);
    await env.node.client.node.NodeUnpublishVolume(req.unpublish);
    let processes = await volumeProcesses(env, name);
    await env.node.client.node.NodeUnstageVolume(req.unstage);
    assert.equal(await podOf(env, name), undefined, "unstage deletes the pod and waits for it");
    await assertNothingLeft(env.asNodeEnvironment(), processes);

    // A new pod, a new ZeroFS: the data came back from S3.
    await env.node.client.node.NodeStageVolume(req.stage);
    const second = await podOf(env, name);
    assert.ok(second);
    assert.notEqual(second.metadata?.uid, first.metadata?.uid, "a new pod for the new stage");
    await env.node.client.node.NodePublishVolume(req.publish);
    await assertContent(dataPath, data);
    processes = await volumeProcesses(env, name);

    // The agent stops and comes back: the pod (and the data path) did not notice.
    const creates = count(await env.kube.nodeRequests(), "create", "pods");
    assert.equal(await env.node.stop(), 0);
    assert.equal((await podOf(env, name))?.metadata?.uid, second.metadata?.uid);
    await env.startNode();
    assert.match(env.node.output(), /re-adopted staged volume/);
    assert.equal(
      (await podOf(env, name))?.metadata?.uid,
      second.metadata?.uid,
      "same pod after restart",
    );
    for (const p of processes) assert.ok(await isStillRunning(p), `${p.argv.join(" ")} survived`);
    const later = randomBytes(64 * 1024);
    await writeFileSynced(join(req.target, "after.bin"), later);
    await assertContent(dataPath, data);
    const stats = await env.node.client.node.NodeGetVolumeStats({
      volume_id: name,
      volume_path: req.target,
    });
    assert.equal(stats.volume_condition.abnormal, false, stats.volume_condition.message);
    // Kubelet retries stage and publish after a restart: no-ops, no new pod.
    await env.node.client.node.NodeStageVolume(req.stage);
    await env.node.client.node.NodePublishVolume(req.publish);
    assert.equal(
      count(await env.kube.nodeRequests(), "create", "pods"),
      creates,
      "no pod created",
    );

    await env.node.client.node.NodeUnpublishVolume(req.unpublish);
    await env.node.client.node.NodeUnstageVolume(req.unstage);
    assert.equal(await podOf(env, name), undefined);
    await assertNothingLeft(env.asNodeEnvironment(), processes);

    // Every rule granted to the node ServiceAccount was needed (the events rule is
    // checked by the settings test, whose failures record Warning events).
    assert.deepEqual(
      await env.kube.unusedGrants((g) => g.rbacFor === "driver" && !g.resources.includes("events")),
      [],
    );
    const requests = await env.kube.nodeRequests();
    assert.ok(count(requests, "get", "configmaps") > 0, "settings came from the API");
    assert.equal(
      requests.filter((r) => r.resource === "secrets").length,
      0,
      "the agent never reads a Secret",
    );
  });
}

/** Step 2. */
function badSettings(shared: Shared): Promise<void> {
  return withPodEnv(shared, async (env) => {
    const name = "pvc-pod-settings";
    const volume = await createVolume(env.controller.client, {
      name,
      kind: "ext4",
      sizeBytes: GiB,
      parameters: {
        configMapName: "zerofs-default",
        preflight: "false",
        "csi.storage.k8s.io/pvc/name": "data-db-0",
        "csi.storage.k8s.io/pvc/namespace": "apps",
      },
    });
    const req = nodeRequests(volume, { kind: "ext4", kubeletDir: env.kubeletDir });
    const createsBefore = count(await env.kube.nodeRequests(), "create", "pods");
    const withConfigMap = (configMapName: string) => ({
      ...req.stage,
      volume_context: { ...req.stage.volume_context, configMapName },
    });

    await expectCode(
      env.node.client.node.NodeStageVolume(withConfigMap("zerofs-badkey")),
      grpcStatus.INVALID_ARGUMENT,
      /unknown ConfigMap key "cacheDiskSizeGb"/,
    );
    await expectCode(
      env.node.client.node.NodeStageVolume(withConfigMap("no-such-config")),
      grpcStatus.FAILED_PRECONDITION,
      /ConfigMap "no-such-config" .*does not exist in namespace "zerofs"/,
    );
    assert.equal(
      count(await env.kube.nodeRequests(), "create", "pods"),
      createsBefore,
      "no pod for a bad stage",
    );
    // Each failure a user must act on is a Warning Event on the PVC, made by the node agent.
    const events = await eventually("both Warning events recorded", async () => {
      const list = await env.kube.admin.core.listNamespacedEvent({ namespace: "apps" });
      return list.items.length >= 2 ? list.items : undefined;
    });
    events.sort((a, b) => String(a.reason).localeCompare(String(b.reason)));
    assert.deepEqual(
      events.map((e) => [e.involvedObject?.kind, e.involvedObject?.name, e.type, e.reason]),
      [
        ["PersistentVolumeClaim", "data-db-0", "Warning", "InvalidVolumeSettings"],
        ["PersistentVolumeClaim", "data-db-0", "Warning", "StageRefused"],
      ],
    );
    assert.match(String(events[1].message), /no-such-config/);
    assert.deepEqual(
      await env.kube.unusedGrants((g) => g.rbacFor === "driver" && g.resources.includes("events")),
      [],
      "the node agent's events rule (create core/v1 Events) was used",
    );
    assert.equal(await podOf(env, name), undefined);
    assert.equal(await findMountByTarget(req.staging), undefined);
  });
}

Deno.test({
  name: "node agent (pod runner) on a real kubelet with the real ZeroFS image",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const shared = await startShared();
    try {
      const steps: [string, (s: Shared) => Promise<void>][] = [
        ["ext4 life with ZeroFS in a pod; the pod survives an agent restart", ext4Life],
        [
          "a bad ConfigMap key is INVALID_ARGUMENT, a missing ConfigMap FAILED_PRECONDITION",
          badSettings,
        ],
      ];
      for (const [name, step] of steps) {
        if (!await t.step(name, () => step(shared))) {
          throw new Error(`step failed: ${name}\n${await shared.kube.node.logTail()}`);
        }
      }
    } finally {
      await stopShared(shared);
    }
  },
});

/** Unpublish and unstage through the CSI API whatever the node still records. */
function cleanUpVolumes(env: PodEnv): Promise<void> {
  return unstageThroughLiveAgent({
    node: () => env.node,
    restart: () => env.startNode(),
    stateDir: env.stateDir,
  });
}

/** What the CSI calls could not remove: lazy unmounts, loop devices, helper processes. */
function forceCleanUp(dir: string): Promise<void> {
  return removeLeftoversUnder(dir, new Set([Deno.pid]));
}
