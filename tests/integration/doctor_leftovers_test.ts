/**
 * `zerofs-csi doctor` lists what the original Go driver left per volume — pods
 * `zerofs-volume-<id>` and Secrets `zerofs-config-<id>` in its namespace — by
 * name only, through the real client against the API stand-in
 * (tests/fixtures/kube). The expected lists are written out by hand from the
 * seeded objects, not derived with the code under test.
 *
 * Run: `deno test -A tests/integration/doctor_leftovers_test.ts`.
 */

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type DoctorCheck, formatDoctorReport, runDoctor } from "../../csi/mod.ts";
import { createKubeClient } from "../../zerofs/mod.ts";
import {
  BASE_MANIFESTS_DIR,
  type KubeObject,
  type KubeStandin,
  startKubeStandin,
} from "../fixtures/kube/mod.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const NS = "zerofs";
/** In every seeded Secret: it must never reach the report. */
const SECRET_VALUE = "leftover-plaintext-password-7f3a";
const CLI_TIMEOUT_MS = 120_000;

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
const SEED: KubeObject[] = [
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

async function withLeftovers(fn: (api: KubeStandin, stateDir: string) => Promise<void>) {
  await Deno.mkdir("/run/zerofs-csi", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "/run/zerofs-csi", prefix: "doctor-leftovers-" });
  // No node of the stand-in's kubelet: the seeded pods are only API objects.
  const api = await startKubeStandin({
    manifestsDir: BASE_MANIFESTS_DIR,
    seed: SEED,
    nodeNames: [],
    tempRoot: dir,
  });
  try {
    const podType = api.typeOf("v1", "Pod");
    const running = api.objects.get(podType, NS, "zerofs-volume-pvc-aaa");
    running.status = { phase: "Running" };
    api.objects.update(podType, NS, running);
    await fn(api, join(dir, "state"));
  } finally {
    await api.stop();
    await Deno.remove(dir, { recursive: true });
  }
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

Deno.test("doctor: lists the original driver's pods and Secrets in its namespace, names only, with what to do", async () => {
  await withLeftovers(async (api, stateDir) => {
    const client = await createKubeClient({ kubeconfig: api.kubeconfigFor("admin") });
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
  });
});

Deno.test("doctor: an identity that may not list Secrets gets 'could not check', not a clean bill", async () => {
  await withLeftovers(async (api, stateDir) => {
    // The node agent's account never reads Secrets (manifests/base/driver/rbac-node.yaml).
    const client = await createKubeClient({
      kubeconfig: api.kubeconfigFor("zerofs/zerofs-csi-node"),
    });
    const report = await runDoctor({ stateDir, kube: { client, namespace: NS } });
    const secrets = check(report.checks, "original driver Secrets");
    assert.deepEqual([secrets.ok, secrets.severity], [false, "warning"]);
    assert.match(
      secrets.detail,
      /^could not check: cannot list secrets in namespace zerofs: HTTP 403: .*this identity may not list secrets there: run doctor with --kubeconfig/,
    );
    const denied = api.requests.filter((r) =>
      r.resource === "secrets" && r.verb === "list" && !r.allowed
    );
    assert.equal(denied.length, 1, "the Secret list was really refused by RBAC");
  });
});

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

Deno.test("zerofs-csi doctor --kubeconfig: the rows in the table; without any API: 'not checked'", async () => {
  await withLeftovers(async (api, stateDir) => {
    const env = { PATH: Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin", HOME: "/root" };
    const withApi = await doctorCli(
      ["--state-dir", stateDir, "--kubeconfig", api.kubeconfigFor("admin"), "--namespace", NS],
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
  });
});
