/**
 * The real control plane (tests/fixtures/kube_cluster.ts) takes the dev overlay,
 * and its RBAC decides, for real ServiceAccount tokens, what the driver's
 * accounts may do; the audit log records those requests with the decision.
 * Fails (never skips) when the binaries are missing: `bash .ci/install` builds them.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { runTool } from "../../blockdev/mod.ts";
import {
  type KubeCluster,
  startKubeCluster,
  writeTokenKubeconfig,
} from "../fixtures/kube_cluster.ts";

const DEV_OVERLAY = fileURLToPath(new URL("../../manifests/overlays/dev", import.meta.url));
const NAMESPACE = "zerofs";
const CONTROLLER_SA = "zerofs-csi-controller";
const NODE_SA = "zerofs-csi-node";
const KUBECTL_TIMEOUT_MS = 60_000;

/** The one place this test runs kubectl; exit 1 is an answer for `auth can-i` and denials. */
async function kubectl(kubeconfig: string, args: string[], okExitCodes: number[] = []) {
  return await runTool("kubectl", ["--kubeconfig", kubeconfig, ...args], {
    timeoutMs: KUBECTL_TIMEOUT_MS,
    okExitCodes,
  });
}

/** `yes` / `no` from `kubectl auth can-i`, impersonating a ServiceAccount of the namespace. */
async function canI(cluster: KubeCluster, sa: string, args: string[]): Promise<string> {
  const out = await kubectl(cluster.kubeconfig, [
    "auth",
    "can-i",
    `--as=system:serviceaccount:${NAMESPACE}:${sa}`,
    ...args,
  ], [1]);
  return out.stdout.trim();
}

/** A kubeconfig that authenticates with a freshly issued token of the ServiceAccount. */
async function serviceAccountKubeconfig(cluster: KubeCluster, sa: string): Promise<string> {
  const { stdout } = await kubectl(cluster.kubeconfig, [
    "create",
    "token",
    sa,
    "-n",
    NAMESPACE,
    "--duration=10m",
  ]);
  const token = stdout.trim();
  assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, "kubectl create token did not print a JWT");
  return await writeTokenKubeconfig(cluster, sa, token);
}

interface AuditEvent {
  verb: string;
  user: { username: string; groups?: string[] };
  objectRef?: { resource?: string; namespace?: string; name?: string };
  responseStatus?: { code?: number };
  annotations?: Record<string, string>;
  stage: string;
}

async function auditEvents(cluster: KubeCluster): Promise<AuditEvent[]> {
  const text = await Deno.readTextFile(cluster.auditLogPath);
  return text.split("\n").filter(Boolean).map((line) => JSON.parse(line) as AuditEvent);
}

Deno.test("a real control plane takes the dev overlay and enforces the driver's RBAC", async (t) => {
  const cluster = await startKubeCluster();
  console.log(`control plane ready in ${cluster.startMs} ms (${cluster.server})`);
  try {
    await t.step("kubectl apply -k overlays/dev creates every object it renders", async () => {
      await kubectl(cluster.kubeconfig, ["apply", "-k", DEV_OVERLAY]);
      const rendered = await kubectl(cluster.kubeconfig, ["kustomize", DEV_OVERLAY]);
      const renderedCount = rendered.stdout.split(/^---$/m)
        .filter((doc) => /^kind:/m.test(doc)).length;
      const got = await kubectl(cluster.kubeconfig, ["get", "-k", DEV_OVERLAY, "-o", "json"]);
      const items = (JSON.parse(got.stdout) as { items: { metadata: { uid?: string } }[] }).items;
      assert(renderedCount > 10, `the overlay rendered only ${renderedCount} objects`);
      assert.equal(items.length, renderedCount);
      assert(items.every((i) => i.metadata.uid), "an object has no uid");
      const sas = await kubectl(cluster.kubeconfig, ["get", "-n", NAMESPACE, "sa", "-o", "name"]);
      assert(sas.stdout.includes(`serviceaccount/${CONTROLLER_SA}\n`), sas.stdout);
      assert(sas.stdout.includes(`serviceaccount/${NODE_SA}\n`), sas.stdout);
    });

    await t.step("RBAC answers per the manifests' roles (auth can-i --as)", async () => {
      assert.equal(await canI(cluster, CONTROLLER_SA, ["get", "secrets", "-n", NAMESPACE]), "yes");
      assert.equal(await canI(cluster, CONTROLLER_SA, ["get", "secrets", "-n", "default"]), "no");
      assert.equal(await canI(cluster, CONTROLLER_SA, ["create", "persistentvolumes"]), "yes");
      assert.equal(await canI(cluster, CONTROLLER_SA, ["create", "pods", "-n", NAMESPACE]), "no");
      assert.equal(await canI(cluster, NODE_SA, ["create", "pods", "-n", NAMESPACE]), "yes");
      assert.equal(await canI(cluster, NODE_SA, ["get", "secrets", "-n", NAMESPACE]), "no");
      assert.equal(await canI(cluster, NODE_SA, ["list", "persistentvolumes"]), "no");
    });

    await t.step("real ServiceAccount tokens are allowed and denied, and audited", async () => {
      const controller = await serviceAccountKubeconfig(cluster, CONTROLLER_SA);
      const node = await serviceAccountKubeconfig(cluster, NODE_SA);
      await kubectl(controller, ["get", "persistentvolumes"]);
      const denied = await kubectl(controller, ["get", "secrets", "-n", "default"], [1]);
      assert.equal(denied.exitCode, 1);
      assert.match(denied.stderr, /forbidden/i);
      await kubectl(node, ["get", "pods", "-n", NAMESPACE]);
      const nodeDenied = await kubectl(node, ["get", "secrets", "-n", NAMESPACE], [1]);
      assert.equal(nodeDenied.exitCode, 1);
      assert.match(nodeDenied.stderr, /forbidden/i);

      const events = (await auditEvents(cluster)).filter((e) => e.stage === "ResponseComplete");
      const find = (user: string, verb: string, resource: string, namespace?: string) =>
        events.find((e) =>
          e.user.username === `system:serviceaccount:${NAMESPACE}:${user}` && e.verb === verb &&
          e.objectRef?.resource === resource && e.objectRef?.namespace === namespace
        );
      const decision = (e: AuditEvent | undefined) =>
        e?.annotations?.["authorization.k8s.io/decision"];
      assert.equal(decision(find(CONTROLLER_SA, "list", "persistentvolumes")), "allow");
      assert.equal(decision(find(CONTROLLER_SA, "list", "secrets", "default")), "forbid");
      assert.equal(find(CONTROLLER_SA, "list", "secrets", "default")?.responseStatus?.code, 403);
      assert.equal(decision(find(NODE_SA, "list", "pods", NAMESPACE)), "allow");
      assert.equal(decision(find(NODE_SA, "list", "secrets", NAMESPACE)), "forbid");
      // The policy logs the namespace's ServiceAccounts and nobody else (not the admin's apply).
      const others = events.filter((e) =>
        !(e.user.groups ?? []).includes(`system:serviceaccounts:${NAMESPACE}`)
      );
      assert.deepEqual(others.map((e) => e.user.username), []);
    });
  } finally {
    await cluster.stop();
  }
  const left = await Deno.stat(cluster.dir).then(() => true, () => false);
  assert(!left, `${cluster.dir} was not removed`);
});
