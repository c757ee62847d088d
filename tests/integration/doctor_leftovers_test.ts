/**
 * `zerofs-csi doctor` lists what the original Go driver left per volume — pods
 * `zerofs-volume-<id>` and Secrets `zerofs-config-<id>` in its namespace — by
 * name only, through the real client against a real Kubernetes API server
 * (tests/fixtures/kube_cluster.ts) with manifests/base applied. The leftovers
 * are created with kubectl; no kubelet runs, so the pods stay Pending unless
 * their status is set (one is marked Running through the status subresource).
 * The expected lists are written out by hand from the created objects, not
 * derived with the code under test. Fails (never skips) when the control-plane
 * binaries are missing.
 *
 * Run: `deno test -A tests/integration/doctor_leftovers_test.ts`.
 */

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { runTool } from "../../blockdev/mod.ts";
import { type DoctorCheck, formatDoctorReport, runDoctor } from "../../csi/mod.ts";
import { createKubeClient } from "../../kube/mod.ts";
import { BASE_MANIFESTS_DIR, type KubeObject } from "../helpers/manifests.ts";
import {
  type KubeCluster,
  startKubeCluster,
  writeTokenKubeconfig,
} from "../fixtures/kube_cluster.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const NS = "zerofs";
/** The node agent's account: it never reads Secrets (manifests/base/driver/rbac-node.yaml). */
const NODE_SA = "zerofs-csi-node";
const NODE_USER = `system:serviceaccount:${NS}:${NODE_SA}`;
/** In every created Secret: it must never reach the report. */
const SECRET_VALUE = "leftover-plaintext-password-7f3a";
const CLI_TIMEOUT_MS = 120_000;
const KUBECTL_TIMEOUT_MS = 60_000;
const UNDICI_IDLE_CLOSE_MS = 5_000;

const pod = (namespace: string, name: string, nodeName: string, labels = {}): KubeObject => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name, namespace, labels },
  spec: { nodeName, containers: [{ name: "zerofs", image: "ghcr.io/barre/zerofs:0.16.2" }] },
});

const secret = (namespace: string, name: string): KubeObject => ({
  apiVersion: "v1",
  kind: "Secret",
  metadata: { name, namespace },
  stringData: {
    "config.toml": `[storage]\nencryption_password = "${SECRET_VALUE}"\n`,
    password: SECRET_VALUE,
  },
});

const original = (id: string) => ({ app: "zerofs", type: "volume", volume: id });

/** Leftovers of two volumes, one Secret without its pod, and lookalikes that are not leftovers. */
const LEFTOVERS: KubeObject[] = [
  // Node objects, so that the pod garbage collector keeps the pods bound to them.
  { apiVersion: "v1", kind: "Node", metadata: { name: "node-1" } },
  { apiVersion: "v1", kind: "Node", metadata: { name: "node-2" } },
  pod(NS, "zerofs-volume-pvc-aaa", "node-1", original("pvc-aaa")),
  pod(NS, "zerofs-volume-pvc-bbb", "node-2", original("pvc-bbb")),
  pod(NS, "zerofs-0123456789abcdef-01234567", "node-1", { "app.kubernetes.io/name": "zerofs" }),
  pod("default", "zerofs-volume-pvc-ccc", "node-1", original("pvc-ccc")),
  secret(NS, "zerofs-config-pvc-aaa"),
  secret(NS, "zerofs-config-pvc-ddd"),
  secret(NS, "zerofs-encryption-password"),
  secret(NS, "zerofs-configuration"),
  secret("default", "zerofs-config-pvc-ccc"),
];

const EXPECTED_PODS_DETAIL = "2 pod(s) of the original driver in zerofs: " +
  "zerofs-volume-pvc-aaa (volume pvc-aaa, node node-1, Running); " +
  "zerofs-volume-pvc-bbb (volume pvc-bbb, node node-2, Pending)";
const EXPECTED_SECRETS = "zerofs-config-pvc-aaa, zerofs-config-pvc-ddd";

/** The one place this test runs kubectl; `stdin` carries objects (never a token). */
async function kubectl(kubeconfig: string, args: string[], stdin?: unknown) {
  return await runTool("kubectl", ["--kubeconfig", kubeconfig, ...args], {
    timeoutMs: KUBECTL_TIMEOUT_MS,
    stdin: stdin === undefined ? undefined : new TextEncoder().encode(JSON.stringify(stdin)),
  });
}

/** manifests/base, then the leftovers; zerofs-volume-pvc-aaa's status says Running. */
async function createLeftovers(cluster: KubeCluster): Promise<void> {
  await kubectl(cluster.kubeconfig, ["apply", "-k", BASE_MANIFESTS_DIR]);
  // Pods are refused until the controller-manager has created the namespace's default account.
  await kubectl(cluster.kubeconfig, [
    "wait",
    "--for=create",
    "--timeout=60s",
    "serviceaccount/default",
    "-n",
    NS,
  ]);
  await kubectl(cluster.kubeconfig, ["apply", "-f", "-"], {
    apiVersion: "v1",
    kind: "List",
    items: LEFTOVERS,
  });
  // What the kubelet would report; none runs here.
  await kubectl(cluster.kubeconfig, [
    "patch",
    "pod",
    "zerofs-volume-pvc-aaa",
    "-n",
    NS,
    "--subresource=status",
    "--type=merge",
    "-p",
    JSON.stringify({ status: { phase: "Running" } }),
  ]);
}

/** A kubeconfig (mode 0600) with a fresh token of the ServiceAccount, from kubectl's stdout. */
async function serviceAccountKubeconfig(cluster: KubeCluster, sa: string): Promise<string> {
  const { stdout } = await kubectl(cluster.kubeconfig, [
    "create",
    "token",
    sa,
    "-n",
    NS,
    "--duration=30m",
  ]);
  const token = stdout.trim();
  assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, "kubectl create token did not print a JWT");
  return await writeTokenKubeconfig(cluster, sa, token);
}

/** The API server's audit events (ResponseComplete) of one user. */
async function auditEvents(cluster: KubeCluster, username: string): Promise<KubeObject[]> {
  return (await Deno.readTextFile(cluster.auditLogPath)).split("\n").filter(Boolean)
    .map((l) => JSON.parse(l))
    .filter((e) => e.stage === "ResponseComplete" && e.user?.username === username);
}

function check(checks: DoctorCheck[], name: string): DoctorCheck {
  const found = checks.find((c) => c.name === name);
  assert.ok(found, `no check "${name}" in ${checks.map((c) => c.name).join(", ")}`);
  return found;
}

function assertNoSecretValue(text: string): void {
  assert.ok(!text.includes(SECRET_VALUE), "a Secret's value reached the report");
  assert.ok(!text.includes(btoa(SECRET_VALUE).slice(0, 16)), "a Secret's data reached the report");
  assert.ok(!text.includes("encryption_password"), "a Secret's config.toml reached the report");
}

/** The CLI, as an operator runs it; the only place this test spawns it. */
async function doctorCli(args: string[], env: Record<string, string>) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "main.ts"), "doctor", ...args],
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(CLI_TIMEOUT_MS),
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  if (out.signal !== null || (out.code !== 0 && out.code !== 1)) {
    throw new Error(`zerofs-csi doctor exited ${out.code} (${out.signal}): ${stderr.slice(-2000)}`);
  }
  return { code: out.code, stdout, stderr };
}

Deno.test("doctor: the original driver's leftovers on a real API server", async (t) => {
  const cluster = await startKubeCluster();
  console.log(`control plane ready in ${cluster.startMs} ms (${cluster.server})`);
  await Deno.mkdir("/run/zerofs-csi", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "/run/zerofs-csi", prefix: "doctor-leftovers-" });
  const stateDir = join(dir, "state");
  try {
    await createLeftovers(cluster);

    await t.step(
      "lists the original driver's pods and Secrets in its namespace, names only, with what to do",
      async () => {
        const client = await createKubeClient({ kubeconfig: cluster.kubeconfig });
        const report = await runDoctor({ stateDir, kube: { client, namespace: NS } });

        const pods = check(report.checks, "original driver pods");
        assert.deepEqual([pods.ok, pods.severity], [false, "warning"]);
        assert.equal(pods.detail, EXPECTED_PODS_DETAIL);
        assert.match(pods.fix ?? "", /Never delete one while a workload mounts its volume/);
        assert.match(pods.fix ?? "", /kubectl delete pod -n zerofs <pod>/);

        const secrets = check(report.checks, "original driver Secrets");
        assert.deepEqual([secrets.ok, secrets.severity], [false, "warning"]);
        assert.equal(
          secrets.detail,
          "2 Secret(s) of the original driver in zerofs, each holding a volume's encryption " +
            `password and S3 keys in plain text: ${EXPECTED_SECRETS}`,
        );
        assert.match(secrets.fix ?? "", /once its volume's zerofs-volume-<volume> pod is gone/);

        // Warnings only: they do not make the node unusable.
        assert.equal(
          report.ok,
          !report.checks.some((c) => !c.ok && c.severity === "error"),
        );
        const table = formatDoctorReport(report);
        assert.match(table, /^WARN +original driver pods +2 pod\(s\)/m);
        assert.match(table, /^WARN +original driver Secrets +2 Secret\(s\)/m);
        assertNoSecretValue(table);
        assertNoSecretValue(JSON.stringify(report));
      },
    );

    await t.step(
      "an identity that may not list Secrets gets 'could not check', not a clean bill",
      async () => {
        const client = await createKubeClient({
          kubeconfig: await serviceAccountKubeconfig(cluster, NODE_SA),
        });
        const report = await runDoctor({ stateDir, kube: { client, namespace: NS } });
        const secrets = check(report.checks, "original driver Secrets");
        assert.deepEqual([secrets.ok, secrets.severity], [false, "warning"]);
        assert.match(
          secrets.detail,
          /^could not check: cannot list secrets in namespace zerofs: HTTP 403: .*this identity may not list secrets there: run doctor with --kubeconfig/,
        );
        // The same account may list pods: its pod check still answers.
        assert.equal(check(report.checks, "original driver pods").detail, EXPECTED_PODS_DETAIL);
        const lists = (await auditEvents(cluster, NODE_USER))
          .filter((e) => e.verb === "list" && e.objectRef?.resource === "secrets")
          .map((e) => [e.responseStatus?.code, e.annotations?.["authorization.k8s.io/decision"]]);
        assert.deepEqual(lists, [[403, "forbid"]], "the Secret list was really refused by RBAC");
      },
    );

    await t.step(
      "zerofs-csi doctor --kubeconfig: the rows in the table; without any API: 'not checked'",
      async () => {
        const env = {
          PATH: Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin",
          HOME: "/root",
        };
        const withApi = await doctorCli(
          ["--state-dir", stateDir, "--kubeconfig", cluster.kubeconfig, "--namespace", NS],
          env,
        );
        assert.equal(withApi.code, 0, withApi.stdout);
        const podRow = withApi.stdout.split("\n").find((l) => l.includes("original driver pods"));
        assert.ok(podRow, withApi.stdout);
        assert.ok(podRow.startsWith("WARN"), podRow);
        assert.ok(podRow.endsWith(EXPECTED_PODS_DETAIL), podRow);
        assert.match(
          withApi.stdout,
          new RegExp(`original driver Secrets .*: ${EXPECTED_SECRETS}$`, "m"),
        );
        assertNoSecretValue(withApi.stdout + withApi.stderr);

        // Not in a pod (no KUBERNETES_SERVICE_HOST) and no --kubeconfig.
        const without = await doctorCli(["--state-dir", stateDir], env);
        assert.equal(without.code, 0, without.stdout);
        assert.match(
          without.stdout,
          /^info +original driver leftovers +not checked: Cannot reach the Kubernetes API: not running in a pod .*pass --kubeconfig FILE$/m,
        );
      },
    );
  } finally {
    // undici (client-node's HTTP client) keeps HTTP/2 sessions to the API server, and
    // Deno 2.9.6's nghttp2 crashed the test process when a stopping server sent GOAWAY
    // on open sessions (tests/e2e/node_pod_policy_test.ts). Stop after they closed.
    await new Promise((r) => setTimeout(r, UNDICI_IDLE_CLOSE_MS));
    await cluster.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
