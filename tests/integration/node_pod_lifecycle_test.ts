/**
 * The node agent in pod mode (`main.ts node --runner pod`) against the
 * Kubernetes API stand-in: ZeroFS (its stand-in) runs in one pod per volume
 * started by the stand-in kubelet, settings come from the ConfigMap through
 * the API, and every request is checked against the manifests' RBAC.
 *
 * Run as root: `deno test -A tests/integration/node_pod_lifecycle_test.ts`.
 */

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { status as grpcStatus } from "@grpc/grpc-js";
import { findMountByTarget } from "../../blockdev/mod.ts";
import { zerofsPodName } from "../../zerofs/mod.ts";
import {
  BASE_MANIFESTS_DIR,
  type KubeObject,
  type KubeStandin,
  startKubeStandin,
} from "../fixtures/kube/mod.ts";
import { STANDIN_BIN } from "../fixtures/zerofs_standin/mod.ts";
import { locateStore } from "../fixtures/zerofs_standin/store.ts";
import { makeTestDir, type RunningDriver, startDriver } from "../helpers/driver.ts";
import {
  assertNothingLeft,
  isStillRunning,
  listProcesses,
  type NodeEnvironment,
  type ProcessInfo,
  removeLeftoversUnder,
  unstageThroughLiveAgent,
  withDescendants,
} from "../helpers/node_env.ts";
import {
  assertContent,
  createVolume,
  expectCode,
  nodeRequests,
  randomBytes,
  writeFileSynced,
} from "../helpers/volume_steps.ts";

const IMAGE = "zerofs-csi.test/zerofs-standin:2.3.0";
const NS = "zerofs";
const NODE = "node-pod-test";
const NODE_SA = "zerofs/zerofs-csi-node";
const NODE_USER = "system:serviceaccount:zerofs:zerofs-csi-node";
const STANDIN_STORE_ROOT = "/run/zerofs-csi/standin-store";
const GiB = 1024 ** 3;

interface PodEnv {
  api: KubeStandin;
  dir: string;
  stateDir: string;
  kubeletDir: string;
  controller: RunningDriver;
  node: RunningDriver;
  startNode(): Promise<RunningDriver>;
  /** The shape the node_env helpers (leftover checks) expect. */
  asNodeEnvironment(): NodeEnvironment;
}

async function withPodEnv(fn: (env: PodEnv) => Promise<void>): Promise<void> {
  const dir = await makeTestDir();
  const bucket = `podnode-${crypto.randomUUID().slice(0, 8)}`;
  const storageURL = `s3://${bucket}/volumes`;
  const settings = {
    storageURL,
    encryptionPasswordSecretName: "zerofs-encryption-password",
    awsCredentialsSecretName: "zerofs-aws-credentials",
    zerofsImage: IMAGE,
    cacheDiskSizeGB: "1",
  };
  const api = await startKubeStandin({
    manifestsDir: BASE_MANIFESTS_DIR,
    images: { [IMAGE]: STANDIN_BIN },
    nodeNames: [NODE],
    maxGracePeriodSeconds: 5,
    tempRoot: dir,
    seed: [
      configMap("zerofs-default", settings),
      configMap("zerofs-badkey", { ...settings, cacheDiskSizeGb: "1" }),
      secret("zerofs-encryption-password", { password: "node-pod-test-password" }),
      secret("zerofs-aws-credentials", {
        AWS_ACCESS_KEY_ID: "test-key",
        AWS_SECRET_ACCESS_KEY: "test-secret",
      }),
    ],
  });
  const stateDir = join(dir, "state");
  const kubeletDir = join(dir, "kubelet");
  await Deno.mkdir(kubeletDir, { recursive: true });
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
  let controller: RunningDriver | undefined;
  const podEnv = {} as PodEnv;
  try {
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
          api.kubeconfigFor(NODE_SA),
          "--namespace",
          NS,
        ],
        env,
      });
      return podEnv.node;
    };
    Object.assign(podEnv, {
      api,
      dir,
      stateDir,
      kubeletDir,
      controller,
      startNode,
      asNodeEnvironment: () => ({ ...podEnv, restartNode: startNode, stop: async () => {} }),
    });
    await startNode();
    await fn(podEnv);
    const denied = api.requests.filter((r) => r.user === NODE_USER && !r.allowed);
    assert.deepEqual(denied, [], "every request of the node agent is allowed by the manifests");
  } finally {
    if (podEnv.node) await cleanUpVolumes(podEnv).catch((e) => console.error(`cleanup: ${e}`));
    await podEnv.node?.stop().catch(() => {});
    await controller?.stop().catch(() => {});
    await forceCleanUp(dir);
    await api.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await Deno.remove(dirname(locateStore(storageURL, STANDIN_STORE_ROOT).dir), { recursive: true })
      .catch(() => {});
  }
}

function configMap(name: string, data: Record<string, string>): KubeObject {
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: NS }, data };
}

function secret(name: string, stringData: Record<string, string>): KubeObject {
  return { apiVersion: "v1", kind: "Secret", metadata: { name, namespace: NS }, stringData };
}

function podOf(api: KubeStandin, volumeId: string): KubeObject | undefined {
  return api.objects.find(api.typeOf("v1", "Pod"), NS, zerofsPodName(volumeId, NODE));
}

function nodeRequestCount(api: KubeStandin, verb: string, resource: string): number {
  return api.requests.filter((r) =>
    r.user === NODE_USER && r.verb === verb && r.resource === resource
  ).length;
}

/** The pod's container process (`standin://<pid>`) and all its descendants. */
async function podProcesses(pod: KubeObject): Promise<ProcessInfo[]> {
  const root = Number(
    String(pod.status.containerStatuses[0].containerID).replace("standin://", ""),
  );
  return withDescendants(new Set([root]), await listProcesses());
}

/** Every process serving the volume: its pod's processes and the node's nbdfuse helper. */
async function volumeProcesses(env: PodEnv, volumeId: string): Promise<ProcessInfo[]> {
  const found = await podProcesses(podOf(env.api, volumeId));
  const all = await listProcesses();
  found.push(...all.filter((p) => p.argv.some((a) => a.startsWith(env.stateDir + "/"))));
  return found;
}

Deno.test("node (pod runner): ext4 life with ZeroFS in a pod; the pod survives an agent restart", async () => {
  await withPodEnv(async (env) => {
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
    const first = podOf(env.api, name);
    assert.equal(first?.status?.phase, "Running", "ZeroFS runs as a pod");
    assert.equal(first.spec.nodeName, NODE);
    assert.equal(first.metadata.annotations["zerofs.csi.driver/volume-id"], name);
    assert.equal((await findMountByTarget(req.staging))?.fsType, "ext4");
    await env.node.client.node.NodePublishVolume(req.publish);
    await writeFileSynced(dataPath, data);
    await env.node.client.node.NodeUnpublishVolume(req.unpublish);
    let processes = await volumeProcesses(env, name);
    assert.ok(processes.length >= 4, `stand-in, diod, nbdkit, nbdfuse: ${processes.length}`);
    await env.node.client.node.NodeUnstageVolume(req.unstage);
    assert.equal(podOf(env.api, name), undefined, "unstage deletes the pod and waits for it");
    await assertNothingLeft(env.asNodeEnvironment(), processes);

    await env.node.client.node.NodeStageVolume(req.stage);
    const second = podOf(env.api, name);
    assert.notEqual(second?.metadata.uid, first.metadata.uid, "a new pod for the new stage");
    await env.node.client.node.NodePublishVolume(req.publish);
    await assertContent(dataPath, data);
    processes = await volumeProcesses(env, name);

    // The agent stops and comes back: the pod (and the data path) did not notice.
    const creates = nodeRequestCount(env.api, "create", "pods");
    assert.equal(await env.node.stop(), 0);
    assert.equal(podOf(env.api, name)?.metadata.uid, second.metadata.uid);
    await env.startNode();
    assert.match(env.node.output(), /re-adopted staged volume/);
    assert.equal(podOf(env.api, name)?.metadata.uid, second.metadata.uid, "same pod after restart");
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
    assert.equal(nodeRequestCount(env.api, "create", "pods"), creates, "no pod created");

    await env.node.client.node.NodeUnpublishVolume(req.unpublish);
    await env.node.client.node.NodeUnstageVolume(req.unstage);
    assert.equal(podOf(env.api, name), undefined);
    await assertNothingLeft(env.asNodeEnvironment(), processes);

    // Every rule granted to the node ServiceAccount was needed (the events rule is
    // checked by the settings test, whose failures record Warning events).
    const unused = env.api.unusedGrants(
      NODE_SA,
      (g) => g.rbacFor === "driver" && !g.resources.includes("events"),
    );
    assert.deepEqual(unused.map((u) => `${u.verb} ${u.group}/${u.resource}`), []);
    assert.ok(nodeRequestCount(env.api, "get", "configmaps") > 0, "settings came from the API");
    assert.equal(nodeRequestCount(env.api, "get", "secrets"), 0, "the agent never reads a Secret");
  });
});

Deno.test("node (pod runner): a bad ConfigMap key is INVALID_ARGUMENT, a missing ConfigMap FAILED_PRECONDITION", async () => {
  await withPodEnv(async (env) => {
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
    assert.equal(nodeRequestCount(env.api, "create", "pods"), 0, "no pod for a bad stage");
    // Each failure a user must act on is a Warning Event on the PVC, made by the node agent.
    const events = env.api.objects.list(env.api.typeOf("v1", "Event"), "apps")
      .sort((a, b) => String(a.reason).localeCompare(String(b.reason)));
    assert.deepEqual(
      events.map((e) => [e.involvedObject?.kind, e.involvedObject?.name, e.type, e.reason]),
      [
        ["PersistentVolumeClaim", "data-db-0", "Warning", "InvalidVolumeSettings"],
        ["PersistentVolumeClaim", "data-db-0", "Warning", "StageRefused"],
      ],
    );
    assert.match(String(events[1].message), /no-such-config/);
    assert.deepEqual(
      env.api.unusedGrants(NODE_SA, (g) => g.rbacFor === "driver" && g.resources.includes("events"))
        .map((u) => `${u.verb} ${u.group}/${u.resource}`),
      [],
      "the node agent's events rule (create core/v1 Events) was used",
    );
    assert.equal(podOf(env.api, name), undefined);
    assert.equal(await findMountByTarget(req.staging), undefined);
  });
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
