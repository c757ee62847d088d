/**
 * The controller in a cluster: `main.ts controller` run with the rendered
 * base Deployment's own arguments against a real Kubernetes API server
 * (tests/fixtures/kube_cluster.ts) that holds the base manifests, applied with
 * kubectl, their ConfigMap and Secret pointed at MinIO. It authenticates with a
 * token the API server issued to its ServiceAccount, so the manifests' real
 * RBAC decides every request, and has no AWS credentials in its environment.
 * Settings and credentials can only have come through the API: the
 * StorageClass's ConfigMap, the default ConfigMap (legacy volumes, volume
 * records) and the Secret they name. The API server's audit log shows what it
 * asked for and what RBAC answered.
 *
 * MinIO verifies signatures, so every successful call proves the Secret's
 * secret access key was used; that key is generated per server and is also
 * the unique marker the controller's output must never contain.
 */

import assert from "node:assert/strict";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { status } from "@grpc/grpc-js";
import {
  type KubeCluster,
  startKubeCluster,
  writeTokenKubeconfig,
} from "../fixtures/kube_cluster.ts";
import { BASE_MANIFESTS_DIR, type KubeObject, renderObjects } from "../helpers/manifests.ts";
import {
  applyObjects,
  auditedOnce,
  type AuditedRequest,
  auditedRequests,
  serviceAccountToken,
  unusedGrants,
} from "../helpers/cluster_setup.ts";
import { grantsFromManifests, serviceAccountUser } from "../helpers/rbac_rules.ts";
import { type LocalS3, startS3 } from "../fixtures/s3.ts";
import {
  BUCKET,
  expectCode,
  listKeys,
  MOUNT_CAP,
  putObjects,
  rawClient,
  volumeKeys,
} from "../helpers/controller_s3.ts";
import { makeTestDir, type RunningDriver, startDriver } from "../helpers/driver.ts";

const NS = "zerofs";
const CONTROLLER_SA = "zerofs-csi-controller";
const CONTROLLER_USER = serviceAccountUser(NS, CONTROLLER_SA);
const DEFAULT_CM = "zerofs-default";
const AWS_SECRET = "zerofs-aws-credentials";
const PREFIX = "kube";
/** Workloads: no kubelet runs them here; the test runs the controller itself. */
const WORKLOAD_KINDS = new Set(["Deployment", "DaemonSet"]);
/** Credential variables the AWS SDK's default chain would read; blanked for the controller. */
const AWS_ENV = [
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN",
  "AWS_PROFILE",
  "AWS_SHARED_CREDENTIALS_FILE",
  "AWS_CONFIG_FILE",
  "AWS_WEB_IDENTITY_TOKEN_FILE",
  "AWS_CONTAINER_CREDENTIALS_FULL_URI",
  "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
];

/**
 * The rendered manifests but their workloads, with the ConfigMap and Secret
 * pointed at `s3`, a ConfigMap naming a Secret that does not exist, and the
 * CSINode objects two node-driver-registrars would leave.
 */
function clusterObjects(manifests: KubeObject[], s3: LocalS3, secretValue: string): KubeObject[] {
  const objects = manifests.filter((o) => !WORKLOAD_KINDS.has(o.kind))
    .map((o) => structuredClone(o));
  const cm = objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === DEFAULT_CM);
  assert(cm, `the base manifests have no ConfigMap ${DEFAULT_CM}`);
  assert.equal(cm.data.awsCredentialsSecretName, AWS_SECRET, "base ConfigMap names the Secret");
  Object.assign(cm.data, {
    storageURL: `s3://${BUCKET}/${PREFIX}`,
    awsEndpoint: s3.endpoint,
    awsAllowHTTP: "true",
  });
  const aws = objects.find((o) => o.kind === "Secret" && o.metadata.name === AWS_SECRET);
  assert(aws, `the base manifests have no Secret ${AWS_SECRET}`);
  aws.stringData = { AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: secretValue };
  objects.push({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "zerofs-nosecret", namespace: NS },
    data: { ...cm.data, awsCredentialsSecretName: "no-such-secret" },
  });
  // What the node-driver-registrar leaves: one node runs our agent, one only another driver's.
  const csiNode = (name: string, driver: string) => ({
    apiVersion: "storage.k8s.io/v1",
    kind: "CSINode",
    metadata: { name },
    spec: { drivers: [{ name: driver, nodeID: name, topologyKeys: [] }] },
  });
  objects.push(csiNode(NODE_WITH_AGENT, "zerofs.csi.driver"), csiNode(NODE_WITHOUT, "other.csi"));
  return objects;
}

const NODE_WITH_AGENT = "node-with-agent";
const NODE_WITHOUT = "node-without-agent";

/**
 * The driver container's args in the rendered controller Deployment, with
 * `$(VAR)` expanded from its env (fieldRef metadata.namespace → `NS`) and the
 * socket moved to `socket`.
 */
function controllerArgs(manifests: KubeObject[], socket: string): string[] {
  const deploy = manifests.find((o) =>
    o.kind === "Deployment" && o.metadata.name === "zerofs-csi-controller"
  );
  const container = deploy?.spec.template.spec.containers.find((c: KubeObject) =>
    c.name === "zerofs-csi"
  );
  assert(container, "no zerofs-csi container in the controller Deployment");
  const vars: Record<string, string> = {};
  for (const e of container.env ?? []) {
    if (e.valueFrom?.fieldRef?.fieldPath === "metadata.namespace") vars[e.name] = NS;
  }
  const args: string[] = container.args.map((a: string) =>
    a.replace(/\$\((\w+)\)/g, (_: string, v: string) => {
      assert(v in vars, `arg ${a} refers to $(${v}), which the container does not define`);
      return vars[v];
    })
  );
  assert.equal(args[0], "controller");
  const i = args.indexOf("--endpoint");
  assert(i > 0, "the Deployment passes --endpoint");
  args[i + 1] = `unix://${socket}`;
  return args.slice(1);
}

Deno.test("controller (in a cluster): settings and credentials through the Kubernetes API", async (t) => {
  const dir = await makeTestDir();
  const s3 = await startS3();
  const secretValue = s3.secretAccessKey;
  const client = rawClient(s3);
  let cluster: KubeCluster | undefined;
  let driver: RunningDriver | undefined;
  try {
    await s3.createBucket(BUCKET);
    const manifests = await renderObjects(BASE_MANIFESTS_DIR);
    cluster = await startKubeCluster({ auditNamespace: NS });
    console.log(`control plane ready in ${cluster.startMs} ms`);
    const objects = clusterObjects(manifests, s3, secretValue);
    await applyObjects(cluster, objects);
    // The kubeconfig and the CA it names go where the controller's permission set lets it read.
    const caCertPath = `${dir}/kube-ca.crt`;
    await Deno.copyFile(cluster.caCertPath, caCertPath);
    const kubeconfig = await writeTokenKubeconfig(
      { dir, server: cluster.server, caCertPath },
      CONTROLLER_SA,
      await serviceAccountToken(cluster, NS, CONTROLLER_SA),
    );
    const env: Record<string, string> = { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" };
    for (const name of [...AWS_ENV, ...Object.keys(Deno.env.toObject())]) {
      if (name.startsWith("AWS_")) env[name] = "";
    }
    const args = [
      ...controllerArgs(manifests, `${dir}/controller.sock`),
      "--state-dir",
      `${dir}/state`,
      "--kubeconfig",
      kubeconfig,
    ];
    assert.ok(args.includes(`--default-config-map=${DEFAULT_CM}`), args.join(" "));
    assert.ok(args.includes(`--namespace=${NS}`), args.join(" "));
    driver = await startDriver({ mode: "controller", args, env });
    const c = driver.client.controller;
    const kube = cluster;
    const create = (name: string, parameters: Record<string, string>) =>
      c.CreateVolume({ name, volume_capabilities: [MOUNT_CAP], parameters });

    await t.step("starts with the default ConfigMap's volume records in the object store", () => {
      assert.match(driver!.output(), /"msg":"settings sources".*"config_source":"api"/);
      assert.match(
        driver!.output(),
        new RegExp(`"msg":"volume records in the object store".*s3://${BUCKET}/${PREFIX}/`),
      );
    });

    await t.step("CreateVolume with configMapName (pre-flight on) succeeds", async () => {
      const res = await create("pvc-kube-1", { configMapName: DEFAULT_CM });
      assert.equal(res.volume.volume_id, "pvc-kube-1");
      const record = `${PREFIX}/.zerofs-csi-volumes/pvc-kube-1.json`;
      assert.deepEqual(await listKeys(client, record), [record], "record in the object store");
      const got = (resource: string, name: string) => (r: AuditedRequest) =>
        r.verb === "get" && r.resource === resource && r.name === name && r.namespace === NS &&
        r.decision === "allow" && r.code === 200;
      await auditedOnce(kube, CONTROLLER_USER, got("configmaps", DEFAULT_CM), "get ConfigMap");
      await auditedOnce(kube, CONTROLLER_USER, got("secrets", AWS_SECRET), "get Secret");
    });

    await t.step("ControllerPublishVolume knows the nodes from their CSINode objects", async () => {
      const pub = {
        volume_id: "pvc-kube-1",
        volume_capability: MOUNT_CAP,
        readonly: false,
        volume_context: {},
      };
      await c.ControllerPublishVolume({ ...pub, node_id: NODE_WITH_AGENT });
      for (const node of [NODE_WITHOUT, "no-such-node"]) {
        await expectCode(
          c.ControllerPublishVolume({ ...pub, node_id: node }),
          status.NOT_FOUND,
          new RegExp(`node "${node}" does not exist \\(not in Kubernetes CSINode objects\\)`),
        );
      }
      await c.ControllerUnpublishVolume({ volume_id: "pvc-kube-1", node_id: NODE_WITH_AGENT });
    });

    await t.step("credentials are the Secret's, read on every call", async () => {
      const original = objects.find((o) => o.kind === "Secret" && o.metadata.name === AWS_SECRET);
      const wrong = structuredClone(original);
      wrong.stringData.AWS_ACCESS_KEY_ID = "WRONGKEY";
      await applyObjects(kube, [wrong]);
      try {
        const err = await expectCode(
          create("pvc-kube-wrongkey", { configMapName: DEFAULT_CM, preflight: "true" }),
          status.FAILED_PRECONDITION,
          /InvalidAccessKeyId/,
        );
        assert.ok(!err.details.includes(secretValue), "secret in the error");
      } finally {
        await applyObjects(kube, [original]);
      }
    });

    await t.step("a missing ConfigMap or Secret is FAILED_PRECONDITION naming it", async () => {
      await expectCode(
        create("pvc-kube-nocm", { configMapName: "no-such-config" }),
        status.FAILED_PRECONDITION,
        /ConfigMap "no-such-config" \(StorageClass parameter\) does not exist; create it in namespace "zerofs"/,
      );
      await expectCode(
        create("pvc-kube-nosecret", { configMapName: "zerofs-nosecret" }),
        status.FAILED_PRECONDITION,
        /Secret "no-such-secret" \(awsCredentialsSecretName\) in namespace "zerofs" does not exist/,
      );
      for (const name of ["pvc-kube-nocm", "pvc-kube-nosecret", "pvc-kube-wrongkey"]) {
        await expectCode(
          c.ValidateVolumeCapabilities({ volume_id: name, volume_capabilities: [MOUNT_CAP] }),
          status.NOT_FOUND,
        );
      }
    });

    await t.step("DeleteVolume removes the volume's objects and its record", async () => {
      const neighbour = `${PREFIX}/pvc-kube-10/wal/000000.sst`;
      await putObjects(client, [...volumeKeys(`${PREFIX}/pvc-kube-1/`, 7), neighbour]);
      assert.deepEqual(await c.DeleteVolume({ volume_id: "pvc-kube-1" }), {});
      assert.deepEqual(await listKeys(client, `${PREFIX}/pvc-kube-1/`), []);
      assert.deepEqual(await listKeys(client, `${PREFIX}/.zerofs-csi-volumes/pvc-kube-1.json`), []);
      assert.deepEqual(await listKeys(client, neighbour), [neighbour], "neighbour kept");
    });

    await t.step("a volume without a record is deleted through the default ConfigMap", async () => {
      await putObjects(client, volumeKeys(`${PREFIX}/pvc-legacy/`, 4));
      assert.deepEqual(await c.DeleteVolume({ volume_id: "pvc-legacy" }), {});
      assert.deepEqual(await listKeys(client, `${PREFIX}/pvc-legacy/`), []);
      assert.match(driver!.output(), /"msg":"volume objects deleted".*pvc-legacy/);
    });

    await t.step("every request was allowed and each of the driver's grants was used", async () => {
      const requests = await auditedRequests(kube, CONTROLLER_USER);
      assert.ok(requests.length > 0);
      const denied = requests.filter((r) => r.decision !== "allow" || r.code === 403);
      assert.deepEqual(denied, [], "requests the API server's RBAC refused");
      assert.deepEqual(
        requests.filter((r) =>
          r.verb !== "get" || (r.namespace !== NS && r.resource !== "csinodes")
        ).map((r) => `${r.verb} ${r.resource}`),
        [],
        "the controller only gets objects in its namespace, and CSINodes",
      );
      // Every rule granted to the controller binary itself was used (its sidecars
      // have their own roles).
      const grants = (grantsFromManifests(manifests).get(CONTROLLER_USER) ?? [])
        .filter((g) => g.rbacFor === "driver");
      assert.ok(grants.length > 0, `the manifests grant ${CONTROLLER_USER} nothing for the driver`);
      const unused = unusedGrants(grants, requests)
        .map((u) => `${u.verb} ${u.group}/${u.resource} (${u.grant.role})`);
      assert.deepEqual(unused, []);
    });

    await t.step("no secret value in the output or the volume records", async () => {
      await create("pvc-kube-rec", { configMapName: DEFAULT_CM, deletePolicy: "retain" });
      const out = await client.send(
        new GetObjectCommand({
          Bucket: BUCKET,
          Key: `${PREFIX}/.zerofs-csi-volumes/pvc-kube-rec.json`,
        }),
      );
      assert.ok(!(await out.Body!.transformToString()).includes(secretValue));
      await driver!.stop();
      assert.ok(!driver!.output().includes(secretValue), "secret value in the controller output");
    });
  } finally {
    await driver?.stop();
    await cluster?.stop();
    client.destroy();
    await s3.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
