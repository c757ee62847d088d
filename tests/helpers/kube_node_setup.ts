/**
 * A real Kubernetes for the pod runner's tests: the control plane of
 * tests/fixtures/kube_cluster.ts, one real kubelet + containerd node of
 * tests/fixtures/kubelet_node.ts (which imports the real ZeroFS image), MinIO on
 * the node's bridge address (where pods reach the host), and the driver's base
 * manifests applied: namespace, ServiceAccounts, RBAC and the node-pod admission
 * policies, with the policy's parameters naming this run's image, Secrets and
 * state directory. The node agent's identity is a token of its ServiceAccount
 * bound to a pod on the node (as the DaemonSet's pod would hold), so the policy
 * sees the node name it keys on.
 *
 * Requests of the node ServiceAccount are read from the API server's audit log
 * (who, verb, resource, name, RBAC's decision, response code).
 *
 * One kubelet per machine: never run two of these (or tests/e2e/pvc_test.ts) at once.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { V1Pod } from "@kubernetes/client-node";
import { runTool } from "../../blockdev/mod.ts";
import { createKubeClient, type KubeClient } from "../../kube/mod.ts";
import {
  type KubeCluster,
  startKubeCluster,
  writeTokenKubeconfig,
} from "../fixtures/kube_cluster.ts";
import { E2E_IMAGES, type KubeletNode, startKubeletNode } from "../fixtures/kubelet_node.ts";
import { type LocalS3, startS3 } from "../fixtures/s3.ts";
import { BASE_MANIFESTS_DIR, type KubeObject, renderObjects } from "./manifests.ts";
import { listProcesses, type ProcessInfo } from "./node_env.ts";
import { unusedGrants } from "./cluster_setup.ts";
import { type Grant, grantsFromManifests } from "./rbac_rules.ts";

/** The kubelet node's name: the node agent's --node-id and its token's node. */
export const NODE = "zerofs-e2e-node";
/** The driver namespace of the base manifests. */
export const NS = "zerofs";
export const NODE_SA = "zerofs-csi-node";
export const NODE_USER = `system:serviceaccount:${NS}:${NODE_SA}`;
/** The real ZeroFS image build.sh imports into the node's containerd. */
export const ZEROFS_IMAGE = E2E_IMAGES.zerofs;
const POLICY_PARAMS = "zerofs-csi-node-pods";
/** The pod the node agent's token is bound to (the DaemonSet pod's stand-in holder). */
const AGENT_POD = "zerofs-csi-node-agent";
const AUDIT_MARKER_PREFIX = "audit-marker-";
const KUBECTL_TIMEOUT_MS = 180_000;
/** A loaded 2-core machine: generous, but every wait polls a condition. */
const WAIT_TIMEOUT_MS = 300_000;
const POLL_MS = 250;
/**
 * undici (client-node's HTTP client) and Deno's nghttp2 crashed the test process when
 * the stopping API server sent GOAWAY on open sessions (node_pod_policy_test.ts): stop
 * only after undici closed its idle sessions (after 4 s).
 */
const UNDICI_IDLE_CLOSE_MS = 5_000;

/** One request of the node ServiceAccount, as the audit log recorded it. */
export interface AuditedRequest {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
  code: number;
  /** RBAC's answer: "allow" or "forbid". */
  decision: string;
  /** A server-side dry run (`?dryRun=All`): admission was asked, nothing was stored. */
  dryRun: boolean;
}

/** Options of {@linkcode startKubeNodeSetup}. */
export interface KubeNodeSetupOptions {
  /** The node agent's --state-dir: ZeroFS pods may mount only `<stateRoot>/v/<hex>`. */
  stateRoot: string;
  /** Secret names the ZeroFS pods may reference (the policy's `secrets`). */
  secretNames: string[];
}

/** A running cluster, node and S3, with the driver's RBAC and policies applied. */
export interface KubeNodeSetup {
  cluster: KubeCluster;
  node: KubeletNode;
  /** MinIO at the node's bridge address: `s3.endpoint` is reachable from pods. */
  s3: LocalS3;
  /** Client as the cluster admin. */
  admin: KubeClient;
  /** Kubeconfig (0600) with the node ServiceAccount's token bound to a pod on {@linkcode NODE}. */
  nodeKubeconfig: string;
  /** `kubectl` as the admin; stdin carries manifests, never a token. */
  kubectl(args: string[], stdin?: unknown): Promise<string>;
  /** Admin: apply these objects. */
  apply(...objects: KubeObject[]): Promise<void>;
  /** Admin read of a pod of {@linkcode NS}; undefined when it does not exist. */
  pod(name: string): Promise<V1Pod | undefined>;
  /**
   * Poll until the node token's server-side dry run of `pod` is admitted (the policy
   * follows its parameters a moment after they change).
   */
  waitUntilAdmitted(pod: V1Pod): Promise<void>;
  /** Every request of the node ServiceAccount so far (up to the call), in log order. */
  nodeRequests(): Promise<AuditedRequest[]>;
  /** The node ServiceAccount's grants (from the manifests) no audited request used. */
  unusedGrants(filter?: (g: Grant) => boolean): Promise<string[]>;
  /** Delete every pod, stop the node, MinIO and the cluster. */
  stop(): Promise<void>;
}

/** Poll `probe` until it answers a value; fail naming `what`, with `detail()` if given. */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  detail?: () => Promise<string>,
): Promise<T> {
  const deadline = Date.now() + WAIT_TIMEOUT_MS;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  throw new Error(
    `not ${what} within ${WAIT_TIMEOUT_MS} ms${last ? ` (last error: ${last})` : ""}` +
      (detail ? `\n${await detail()}` : ""),
  );
}

/** The base manifests' objects this setup applies: all but workloads and example Secrets. */
async function driverObjects(): Promise<KubeObject[]> {
  const skipped = new Set(["DaemonSet", "Deployment", "Secret"]);
  return (await renderObjects(BASE_MANIFESTS_DIR)).filter((o) => !skipped.has(o.kind));
}

/** A pod on the node running as the node ServiceAccount, so a token can be bound to it. */
function agentPod(): KubeObject {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: AGENT_POD, namespace: NS, labels: { "app.kubernetes.io/name": "agent" } },
    spec: {
      nodeName: NODE,
      serviceAccountName: NODE_SA,
      automountServiceAccountToken: false,
      terminationGracePeriodSeconds: 1,
      tolerations: [{ operator: "Exists" }],
      containers: [{ name: "agent", image: E2E_IMAGES.pause, imagePullPolicy: "Never" }],
    },
  };
}

/**
 * A pod the policy admits only with this run's parameters: the image, every Secret
 * name and a volume directory under the state root.
 */
function policyProbe(opts: KubeNodeSetupOptions): V1Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: "policy-probe",
      namespace: NS,
      labels: { "app.kubernetes.io/name": "zerofs" },
    },
    spec: {
      nodeName: NODE,
      automountServiceAccountToken: false,
      securityContext: { seccompProfile: { type: "RuntimeDefault" } },
      containers: [{
        name: "zerofs",
        image: ZEROFS_IMAGE,
        args: ["run", "-c", "/zerofs/config.toml"],
        env: opts.secretNames.map((name) => ({
          name: "ZEROFS_ENCRYPTION_PASSWORD",
          valueFrom: { secretKeyRef: { name, key: "password" } },
        })),
        securityContext: {
          privileged: false,
          allowPrivilegeEscalation: false,
          capabilities: { drop: ["ALL"] },
        },
      }],
      volumes: [{ name: "state", hostPath: { path: `${opts.stateRoot}/v/0123456789abcdef` } }],
    },
  };
}

/** Start everything; on failure, stop what started. */
export async function startKubeNodeSetup(opts: KubeNodeSetupOptions): Promise<KubeNodeSetup> {
  const cleanups: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const c of cleanups.toReversed()) {
      await c().catch((e) => console.error(`kube node setup: stopping: ${e}`));
    }
  };
  try {
    const cluster = await startKubeCluster({
      users: [{ name: `system:node:${NODE}`, groups: ["system:nodes"] }],
    });
    cleanups.push(() => cluster.stop());
    cleanups.push(() => new Promise((r) => setTimeout(r, UNDICI_IDLE_CLOSE_MS)));
    const node = await startKubeletNode({
      nodeName: NODE,
      kubeconfigPath: cluster.userKubeconfigs[`system:node:${NODE}`],
    });
    cleanups.push(() => node.stop());
    const s3 = await startS3({ hostname: node.gatewayAddress });
    cleanups.push(() => s3.stop());

    const kubectl = async (args: string[], stdin?: unknown) => {
      const { stdout } = await runTool("kubectl", ["--kubeconfig", cluster.kubeconfig, ...args], {
        timeoutMs: KUBECTL_TIMEOUT_MS,
        stdin: stdin === undefined ? undefined : new TextEncoder().encode(JSON.stringify(stdin)),
      });
      return stdout;
    };
    const apply = async (...objects: KubeObject[]) => {
      await kubectl(["apply", "-f", "-"], { apiVersion: "v1", kind: "List", items: objects });
    };
    // Pods go before the node: the kubelet tears them down while it still runs.
    cleanups.push(async () => {
      await kubectl(["delete", "pods", "--all", "-n", NS, "--wait=true", "--timeout=150s"]);
    });

    const objects = await driverObjects();
    const grants = grantsFromManifests(objects).get(NODE_USER) ?? [];
    assert.ok(grants.length > 0, `the manifests grant ${NODE_USER} nothing`);
    await apply(...objects);
    await kubectl([
      "patch",
      "configmap",
      POLICY_PARAMS,
      "-n",
      NS,
      "--type=merge",
      "-p",
      JSON.stringify({
        data: {
          zerofsImages: ZEROFS_IMAGE,
          secrets: opts.secretNames.join(" "),
          stateDir: opts.stateRoot,
        },
      }),
    ]);
    await apply(agentPod());
    // The token is bound once the pod has its node (nodeName is set at create).
    const { stdout: token } = await runTool("kubectl", [
      "--kubeconfig",
      cluster.kubeconfig,
      "create",
      "token",
      NODE_SA,
      "-n",
      NS,
      "--duration=2h",
      "--bound-object-kind",
      "Pod",
      "--bound-object-name",
      AGENT_POD,
    ], { timeoutMs: KUBECTL_TIMEOUT_MS });
    assert.match(token.trim(), /^[\w-]+\.[\w-]+\.[\w-]+$/, "kubectl create token printed no JWT");
    const nodeKubeconfig = await writeTokenKubeconfig(cluster, "node-agent", token.trim());
    const admin = await createKubeClient({ kubeconfig: cluster.kubeconfig });
    const nodeClient = await createKubeClient({ kubeconfig: nodeKubeconfig });

    // The policy follows its parameters a moment after they change.
    await eventually("the node-pod policy following its parameters", async () => {
      await nodeClient.core.createNamespacedPod({
        namespace: NS,
        body: policyProbe(opts),
        dryRun: "All",
      });
      return true;
    });

    const pod = (name: string) =>
      admin.core.readNamespacedPod({ name, namespace: NS }).catch((e) => {
        if ((e as { code?: number }).code === 404) return undefined;
        throw e;
      });

    /** The audit log up to now: a marker request is logged last; wait for it. */
    const nodeRequests = async (): Promise<AuditedRequest[]> => {
      const marker = `${AUDIT_MARKER_PREFIX}${crypto.randomUUID().slice(0, 8)}`;
      await nodeClient.core.readNamespacedConfigMap({ name: marker, namespace: NS })
        .catch(() => {});
      const events = await eventually("the audit marker logged", async () => {
        const all = (await Deno.readTextFile(cluster.auditLogPath)).split("\n")
          .filter(Boolean).map((l) => JSON.parse(l))
          .filter((e) => e.stage === "ResponseComplete" && e.user?.username === NODE_USER);
        return all.some((e) => e.objectRef?.name === marker) ? all : undefined;
      });
      return events
        .filter((e) => !String(e.objectRef?.name ?? "").startsWith(AUDIT_MARKER_PREFIX))
        .map((e) => ({
          verb: e.verb,
          group: e.objectRef?.apiGroup ?? "",
          resource: e.objectRef?.resource ?? "",
          subresource: e.objectRef?.subresource,
          namespace: e.objectRef?.namespace,
          name: e.objectRef?.name,
          code: e.responseStatus?.code ?? 0,
          decision: e.annotations?.["authorization.k8s.io/decision"] ?? "",
          dryRun: /[?&]dryRun=/.test(String(e.requestURI ?? "")),
        }));
    };

    return {
      cluster,
      node,
      s3,
      admin,
      nodeKubeconfig,
      kubectl,
      apply,
      pod,
      waitUntilAdmitted: async (p: V1Pod) => {
        await eventually("the node token's pod admitted by the policy", async () => {
          await nodeClient.core.createNamespacedPod({ namespace: NS, body: p, dryRun: "All" });
          return true;
        });
      },
      nodeRequests,
      unusedGrants: async (filter = () => true) => {
        return unusedGrants(grants.filter(filter), await nodeRequests())
          .map(({ verb, group, resource }) => `${verb} ${group}/${resource}`);
      },
      stop: stopAll,
    };
  } catch (e) {
    await stopAll();
    throw e;
  }
}

/**
 * The host processes of a pod's container: those whose cgroup path names its
 * container ID (the kubelet's cgroupfs driver puts each container in a cgroup of
 * its own, named by the ID).
 */
export async function containerProcesses(pod: V1Pod, container: string): Promise<ProcessInfo[]> {
  const status = pod.status?.containerStatuses?.find((c) => c.name === container);
  const id = status?.containerID?.replace(/^containerd:\/\//, "");
  assert.ok(id && /^[0-9a-f]{64}$/.test(id), `no containerd ID in ${JSON.stringify(status)}`);
  const found: ProcessInfo[] = [];
  for (const p of await listProcesses()) {
    const cgroups = await Deno.readTextFile(`/proc/${p.pid}/cgroup`).catch(() => "");
    if (cgroups.includes(id)) found.push(p);
  }
  return found;
}

/** What an admin watch of one pod delivered, in order. */
export interface PodEventRecorder {
  /** `[type, uid]` of every ADDED, MODIFIED and DELETED event so far. */
  events: Array<[string, string]>;
  stop(): void;
}

/** Watch the pod `name` of {@linkcode NS} from now on, as the admin. */
export async function recordPodEvents(admin: KubeClient, name: string): Promise<PodEventRecorder> {
  const list = await admin.core.listNamespacedPod({
    namespace: NS,
    fieldSelector: `metadata.name=${name}`,
  });
  const events: Array<[string, string]> = [];
  const abort = await new admin.sdk.Watch(admin.config).watch(
    `/api/v1/namespaces/${NS}/pods`,
    { fieldSelector: `metadata.name=${name}`, resourceVersion: list.metadata?.resourceVersion },
    (type: string, obj: V1Pod) => {
      if (["ADDED", "MODIFIED", "DELETED"].includes(type)) events.push([type, obj.metadata!.uid!]);
    },
    () => {},
  );
  return { events, stop: () => abort.abort() };
}
