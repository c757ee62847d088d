/**
 * The real control plane (tests/fixtures/kube_cluster.ts) as the driver's
 * cluster in integration tests: objects applied with kubectl, a
 * ServiceAccount's token issued by the API server, and the requests a
 * ServiceAccount made, read back from the API server's audit log in the
 * authorizer's terms.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { V1Pod } from "@kubernetes/client-node";
import { runTool } from "../../blockdev/mod.ts";
import type { KubeClient } from "../../kube/mod.ts";
import type { KubeCluster } from "../fixtures/kube_cluster.ts";
import type { KubeObject } from "./manifests.ts";
import { type Grant, grantAllows, type RequestAttributes } from "./rbac_rules.ts";

const KUBECTL_TIMEOUT_MS = 60_000;
const AUDIT_WAIT_MS = 10_000;
const AUDIT_POLL_MS = 100;

/**
 * The one place these tests run kubectl, as the cluster's admin. `stdin`
 * carries objects (Secrets among them), so their values never reach argv.
 */
export async function kubectl(
  cluster: Pick<KubeCluster, "kubeconfig">,
  args: string[],
  stdin?: KubeObject,
): Promise<string> {
  const { stdout } = await runTool("kubectl", ["--kubeconfig", cluster.kubeconfig, ...args], {
    timeoutMs: KUBECTL_TIMEOUT_MS,
    stdin: stdin === undefined ? undefined : new TextEncoder().encode(JSON.stringify(stdin)),
  });
  return stdout;
}

/** `kubectl apply` the objects (in order, as one List). */
export async function applyObjects(
  cluster: Pick<KubeCluster, "kubeconfig">,
  objects: KubeObject[],
): Promise<void> {
  await kubectl(cluster, ["apply", "-f", "-"], { apiVersion: "v1", kind: "List", items: objects });
}

/** A fresh token of the ServiceAccount, issued by the API server (TokenRequest). */
export async function serviceAccountToken(
  cluster: Pick<KubeCluster, "kubeconfig">,
  namespace: string,
  name: string,
): Promise<string> {
  const token = (await kubectl(cluster, [
    "create",
    "token",
    name,
    "-n",
    namespace,
    "--duration=30m",
  ])).trim();
  if (!/^[\w-]+\.[\w-]+\.[\w-]+$/.test(token)) {
    throw new Error(`kubectl create token ${namespace}/${name} did not print a JWT`);
  }
  return token;
}

/** One request the API server answered, as its audit log records it. */
export interface AuditedRequest extends RequestAttributes {
  user: string;
  /** HTTP status of the response. */
  code: number | undefined;
  /** RBAC's decision: "allow" or "forbid". */
  decision: string | undefined;
  /** Path and query, for requests that name no resource (discovery, say). */
  uri: string;
}

interface AuditEvent {
  stage: string;
  verb: string;
  requestURI: string;
  user: { username: string };
  objectRef?: {
    apiGroup?: string;
    resource?: string;
    subresource?: string;
    namespace?: string;
    name?: string;
  };
  responseStatus?: { code?: number };
  annotations?: Record<string, string>;
}

/** Every completed request of `user` in the audit log, in the order answered. */
export async function auditedRequests(
  cluster: Pick<KubeCluster, "auditLogPath">,
  user: string,
): Promise<AuditedRequest[]> {
  const text = await Deno.readTextFile(cluster.auditLogPath).catch((e) => {
    if (e instanceof Deno.errors.NotFound) return "";
    throw e;
  });
  return text.split("\n").filter(Boolean).map((line) => JSON.parse(line) as AuditEvent)
    .filter((e) => e.stage === "ResponseComplete" && e.user.username === user)
    .map((e) => ({
      user,
      verb: e.verb,
      group: e.objectRef?.apiGroup ?? "",
      resource: e.objectRef?.resource ?? "",
      subresource: e.objectRef?.subresource,
      namespace: e.objectRef?.namespace,
      name: e.objectRef?.name,
      code: e.responseStatus?.code,
      decision: e.annotations?.["authorization.k8s.io/decision"],
      uri: e.requestURI,
    }));
}

/**
 * The audited requests of `user` once one of them matches `wanted`. The API
 * server may write a ResponseComplete event just after the client has read the
 * response, so a request just answered can take a moment to appear.
 */
export async function auditedOnce(
  cluster: Pick<KubeCluster, "auditLogPath">,
  user: string,
  wanted: (r: AuditedRequest) => boolean,
  what: string,
): Promise<AuditedRequest[]> {
  const deadline = performance.now() + AUDIT_WAIT_MS;
  for (;;) {
    const requests = await auditedRequests(cluster, user);
    if (requests.some(wanted)) return requests;
    if (performance.now() > deadline) {
      const seen = requests.map((r) => `${r.verb} ${r.uri} ${r.code}`).join("\n  ");
      throw new Error(`no audited request of ${user}: ${what}; it made:\n  ${seen}`);
    }
    await new Promise((r) => setTimeout(r, AUDIT_POLL_MS));
  }
}

/**
 * Each verb × group × resource of each grant that no allowed request used
 * (within the grant's scope and resource names).
 */
export function unusedGrants(
  grants: Grant[],
  requests: Array<RequestAttributes & { decision?: string }>,
): Array<{ grant: Grant; verb: string; group: string; resource: string }> {
  const allowed = requests.filter((r) => r.decision === "allow");
  const unused = [];
  for (const grant of grants) {
    for (const verb of grant.verbs) {
      for (const group of grant.apiGroups) {
        for (const resource of grant.resources) {
          const [res, sub] = resource.split("/", 2);
          const hit = allowed.some((r) =>
            r.verb === verb && r.group === group && r.resource === res &&
            r.subresource === sub && grantAllows(grant, r)
          );
          if (!hit) unused.push({ grant, verb, group, resource });
        }
      }
    }
  }
  return unused;
}

/** How long an admission policy's binding or parameters may take to apply. */
const POLICY_SYNC_TIMEOUT_MS = 20_000;

/** Poll `probe` until it answers true, or fail naming `what` (an admission policy syncing, say). */
export async function waitUntilTrue(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs = POLICY_SYNC_TIMEOUT_MS,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(`${what} within ${timeoutMs} ms`);
}

/** Whether a server-side dry run of creating `pod` in `namespace` as `kube` is admitted. */
export function dryRunAdmitted(kube: KubeClient, namespace: string, pod: V1Pod): Promise<boolean> {
  return kube.core.createNamespacedPod({ namespace, body: pod, dryRun: "All" })
    .then(() => true, () => false);
}
