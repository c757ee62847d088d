/**
 * The node agent's pod grant, on a real API server (tests/fixtures/kube_cluster.ts)
 * with the dev overlay applied: a token of the node ServiceAccount bound to a pod on
 * node-a creates the ZeroFS pods the driver's own code builds for node-a (with and
 * without the Envoy sidecar, through PodRunner itself too), and the
 * ValidatingAdmissionPolicies of manifests/base/driver/node-pod-policy.yaml refuse
 * every other shape and every delete outside node-a's ZeroFS pods. Without the
 * policy, RBAC alone admits the escalation (the last step shows it). Also on the
 * real server: the node token reads no Secret, and RBAC answers as the stand-in
 * used to claim. Fails (never skips) when the binaries are missing.
 */

import { dryRunAdmitted, waitUntilTrue } from "../helpers/cluster_setup.ts";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import type { V1Pod } from "@kubernetes/client-node";
import { runTool } from "../../blockdev/mod.ts";
import {
  type InstanceSpec,
  PodRunner,
  resolveSettings,
  volumePaths,
  type VolumeSettings,
  ZeroFsNotReadyError,
  zerofsPodName,
} from "../../zerofs/mod.ts";
import { createKubeClient } from "../../kube/mod.ts";
import { buildInstanceSpec } from "../../csi/mod.ts";
import { type KubeObject, renderObjects } from "../helpers/manifests.ts";
import {
  type KubeCluster,
  startKubeCluster,
  writeTokenKubeconfig,
} from "../fixtures/kube_cluster.ts";

const DEV_OVERLAY = fileURLToPath(new URL("../../manifests/overlays/dev", import.meta.url));
const NS = "zerofs";
const NODE_SA = "zerofs-csi-node";
const NODE_USER = `system:serviceaccount:${NS}:${NODE_SA}`;
const CREATE_POLICY = "zerofs-csi-node-pod-create";
const DELETE_POLICY = "zerofs-csi-node-pod-delete";
const POLICY_PARAMS = "zerofs-csi-node-pods";
/** The DaemonSet's --state-dir, as the shipped policy parameters name it. */
const STATE_ROOT = "/var/lib/zerofs-csi";
const KUBECTL_TIMEOUT_MS = 60_000;
const UNDICI_IDLE_CLOSE_MS = 5_000;

/** The one place this test runs kubectl; `stdin` carries manifests (never a token). */
async function kubectl(
  kubeconfig: string,
  args: string[],
  opts: { okExitCodes?: number[]; stdin?: unknown } = {},
) {
  return await runTool("kubectl", ["--kubeconfig", kubeconfig, ...args], {
    timeoutMs: KUBECTL_TIMEOUT_MS,
    okExitCodes: opts.okExitCodes,
    stdin: opts.stdin === undefined
      ? undefined
      : new TextEncoder().encode(JSON.stringify(opts.stdin)),
  });
}

/** Admin: apply objects given as JSON on stdin. */
async function apply(cluster: KubeCluster, ...objects: KubeObject[]): Promise<void> {
  await kubectl(cluster.kubeconfig, ["apply", "-f", "-"], {
    stdin: { apiVersion: "v1", kind: "List", items: objects },
  });
}

/**
 * A kubeconfig (mode 0600) holding a fresh token of the ServiceAccount; bound to
 * `boundPod` when given, so the token carries that pod's node. The token goes from
 * kubectl's stdout into the file, never into argv.
 */
async function tokenKubeconfig(
  cluster: KubeCluster,
  sa: string,
  boundPod?: string,
): Promise<string> {
  const bound = boundPod ? ["--bound-object-kind", "Pod", "--bound-object-name", boundPod] : [];
  const { stdout } = await kubectl(cluster.kubeconfig, [
    "create",
    "token",
    sa,
    "-n",
    NS,
    "--duration=30m",
    ...bound,
  ]);
  const token = stdout.trim();
  assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, "kubectl create token did not print a JWT");
  const name = `${sa}-${boundPod ?? "unbound"}`;
  return await writeTokenKubeconfig(cluster, name, token);
}

/** The API server's refusal of a request: HTTP status and Status message. */
async function refusal(request: Promise<unknown>): Promise<{ code: number; message: string }> {
  const error = await request.then(
    () => assert.fail("the API server admitted the request"),
    (e: unknown) => e,
  );
  const { code, body } = error as { code?: number; body?: string };
  assert(typeof code === "number" && typeof body === "string", `not an API error: ${error}`);
  return { code, message: (JSON.parse(body) as { message: string }).message };
}

/** What the API server says when a policy's validation refuses a request. */
function denial(
  policies: KubeObject[],
  policy: string,
  what: string,
  subject: string,
): { code: number; message: string } {
  const spec = policies.find((p) => p.metadata.name === policy)?.spec;
  assert(spec, `no policy ${policy} in the manifests`);
  const matching = (spec.validations as { message: string }[])
    .filter((v) => v.message.includes(what));
  assert.equal(matching.length, 1, `policy ${policy} has no single validation about "${what}"`);
  // Unless a validation names a reason, the API server answers 422 Invalid.
  return {
    code: 422,
    message: `${subject} is forbidden: ValidatingAdmissionPolicy '${policy}' with binding ` +
      `'${policy}' denied request: ${matching[0].message}`,
  };
}

/** The InstanceSpec the node builds for a volume (as in pod_runner_test.ts). */
async function instanceSpec(
  runner: PodRunner,
  settings: VolumeSettings,
  stateRoot: string,
  volumeId: string,
  readOnly: boolean,
): Promise<InstanceSpec> {
  const paths = volumePaths(stateRoot, volumeId);
  const version = await runner.version(settings);
  return buildInstanceSpec(runner, { volumeId, paths, readOnly, settings, secrets: {}, version });
}

/** A pod that only holds a place on a node (no kubelet runs: it stays Pending). */
function placeholderPod(name: string, nodeName: string, namespace = NS): KubeObject {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace, labels: { "app.kubernetes.io/name": "placeholder" } },
    spec: {
      nodeName,
      ...(namespace === NS ? { serviceAccountName: NODE_SA } : {}),
      tolerations: [{ operator: "Exists" }],
      containers: [{ name: "agent", image: "zerofs-csi.test/placeholder:1" }],
    },
  };
}

function renamed(pod: V1Pod, name: string): V1Pod {
  const copy = structuredClone(pod);
  copy.metadata!.name = name;
  return copy;
}

Deno.test("the node ServiceAccount creates and deletes only its node's ZeroFS pods (real API server)", async (t) => {
  const policies = (await renderObjects(DEV_OVERLAY))
    .filter((o) => o.kind === "ValidatingAdmissionPolicy");
  const cluster = await startKubeCluster();
  console.log(`control plane ready in ${cluster.startMs} ms (${cluster.server})`);
  const stateRoot = `/run/zerofs-csi/test-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await kubectl(cluster.kubeconfig, ["apply", "-k", DEV_OVERLAY]);
    // Node objects: the token carries the node's uid, and the pod GC keeps pods of real nodes.
    await apply(
      cluster,
      { apiVersion: "v1", kind: "Node", metadata: { name: "node-a" } },
      { apiVersion: "v1", kind: "Node", metadata: { name: "node-b" } },
      placeholderPod("agent-a", "node-a"),
      {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: "unrelated", namespace: NS },
        stringData: { password: "not for ZeroFS" },
      },
    );
    const nodeConfig = await tokenKubeconfig(cluster, NODE_SA, "agent-a");
    const node = await createKubeClient({ kubeconfig: nodeConfig });
    const admin = await createKubeClient({ kubeconfig: cluster.kubeconfig });
    const cm = await admin.core.readNamespacedConfigMap({ name: "zerofs-default", namespace: NS });
    const settingsOf = (extra: Record<string, string> = {}) =>
      resolveSettings({
        parameters: { configMapName: "zerofs-default" },
        configMap: { ...cm.data, ...extra },
      });
    const runnerA = new PodRunner({ kube: node, namespace: NS, nodeName: "node-a" });
    const podFor = async (volumeId: string, o: { envoy?: boolean; readOnly?: boolean } = {}) =>
      runnerA.podFor(
        await instanceSpec(
          runnerA,
          settingsOf(o.envoy ? { envoyEnabled: "true" } : {}),
          STATE_ROOT,
          volumeId,
          o.readOnly ?? false,
        ),
      );
    const plain = await podFor("pvc-plain");
    const createAsNode = (pod: V1Pod) =>
      node.core.createNamespacedPod({ namespace: NS, body: pod });
    const refusedCreate = (policyText: string, name: string) =>
      denial(policies, CREATE_POLICY, policyText, `pods "${name}"`);

    await t.step("the API server type-checks both policies without a warning", async () => {
      const statuses = async () =>
        (JSON.parse(
          (await kubectl(cluster.kubeconfig, ["get", "validatingadmissionpolicy", "-o", "json"]))
            .stdout,
        ).items as KubeObject[]).filter((p) =>
          p.status?.observedGeneration === p.metadata.generation
        );
      await waitUntilTrue("both policies checked", async () => (await statuses()).length === 2);
      const checked = (await statuses()).map((p) => [p.metadata.name, p.status.typeChecking]);
      assert.deepEqual(Object.fromEntries(checked), {
        [CREATE_POLICY]: {},
        [DELETE_POLICY]: {},
      });
    });

    await t.step("the node token names node-a (the claim the policy keys on)", async () => {
      const { stdout } = await kubectl(nodeConfig, ["auth", "whoami", "-o", "json"]);
      const user = JSON.parse(stdout).status.userInfo;
      assert.equal(user.username, NODE_USER);
      assert.deepEqual(user.extra["authentication.kubernetes.io/node-name"], ["node-a"]);
    });

    await t.step("the driver's own pods for node-a are admitted", async () => {
      const created = await createAsNode(plain);
      assert.equal(created.spec?.nodeName, "node-a");
      assert.equal(created.metadata?.name, zerofsPodName("pvc-plain", "node-a"));
      const withEnvoy = await podFor("pvc-envoy", { envoy: true, readOnly: true });
      assert.equal(withEnvoy.spec?.initContainers?.[0]?.name, "envoy");
      assert.deepEqual(withEnvoy.spec?.containers[0].args?.at(-1), "--read-only");
      const sidecar = await createAsNode(withEnvoy);
      assert.equal(sidecar.spec?.initContainers?.[0]?.image, settingsOf().envoyImage);
    });

    await t.step(
      "pods of other accounts, in any namespace, are none of the policy's business",
      async () => {
        // The API server looks up a binding's parameters before its matchConditions: a
        // binding for every namespace would refuse every pod where the ConfigMap is absent.
        for (const namespace of ["default", NS]) {
          const created = await admin.core.createNamespacedPod({
            namespace,
            body: placeholderPod("someone-elses", "node-b", namespace) as V1Pod,
          });
          assert.equal(created.metadata?.namespace, namespace);
        }
      },
    );

    await t.step("every other shape is refused with the policy's reason", async () => {
      const cases: Array<[string, string, (p: V1Pod) => void]> = [
        ["privileged", "containers are not privileged", (p) => {
          // The API server refuses privileged with allowPrivilegeEscalation: false.
          p.spec!.containers[0].securityContext = { privileged: true };
        }],
        ["added-capability", "containers are not privileged", (p) => {
          p.spec!.containers[0].securityContext!.capabilities!.add = ["SYS_ADMIN"];
        }],
        ["host-root", "volumes are one hostPath", (p) => {
          p.spec!.volumes![0].hostPath!.path = "/";
        }],
        ["state-root", "volumes are one hostPath", (p) => {
          p.spec!.volumes![0].hostPath!.path = STATE_ROOT;
        }],
        ["secret-volume", "volumes are one hostPath", (p) => {
          p.spec!.volumes!.push({ name: "s", secret: { secretName: "zerofs-aws-credentials" } });
        }],
        ["node-b", "only on its own node", (p) => {
          p.spec!.nodeName = "node-b";
        }],
        ["controller-sa", "default ServiceAccount", (p) => {
          p.spec!.serviceAccountName = "zerofs-csi-controller";
        }],
        ["token-mounted", "default ServiceAccount", (p) => {
          p.spec!.automountServiceAccountToken = true;
        }],
        ["unrelated-secret", "the zerofs container's environment", (p) => {
          p.spec!.containers[0].env![0].valueFrom!.secretKeyRef!.name = "unrelated";
        }],
        ["other-image", "the one container is `zerofs`", (p) => {
          p.spec!.containers[0].image = "docker.io/library/busybox:1.36";
        }],
        ["shell", "the one container is `zerofs`", (p) => {
          p.spec!.containers[0].command = ["sh", "-c", "env"];
        }],
        ["post-start", "no lifecycle hooks", (p) => {
          p.spec!.containers[0].lifecycle = { postStart: { exec: { command: ["sh"] } } };
        }],
        ["host-network", "no host network", (p) => {
          p.spec!.hostNetwork = true;
        }],
        ["other-envoy", "the only init container is the `envoy` sidecar", (p) => {
          p.spec!.initContainers = [{
            name: "envoy",
            image: "docker.io/library/busybox:1.36",
            restartPolicy: "Always",
            securityContext: plain.spec!.containers[0].securityContext,
          }];
        }],
        ["unlabelled", "labelled app.kubernetes.io/name=zerofs", (p) => {
          p.metadata!.labels = {};
        }],
      ];
      for (const [name, policyText, change] of cases) {
        const pod = renamed(plain, `forbidden-${name}`);
        change(pod);
        assert.deepEqual(
          await refusal(createAsNode(pod)),
          refusedCreate(policyText, `forbidden-${name}`),
          name,
        );
      }
      const listed = await admin.core.listNamespacedPod({ namespace: NS });
      assert.deepEqual(listed.items.filter((p) => p.metadata?.name?.startsWith("forbidden-")), []);
    });

    await t.step("a node token bound to no pod names no node and creates nothing", async () => {
      const unbound = await createKubeClient({
        kubeconfig: await tokenKubeconfig(cluster, NODE_SA),
      });
      const pod = renamed(plain, "from-unbound-token");
      assert.deepEqual(
        await refusal(unbound.core.createNamespacedPod({ namespace: NS, body: pod })),
        refusedCreate("only on its own node", "from-unbound-token"),
      );
    });

    await t.step("deletes: node-a's ZeroFS pods only", async () => {
      // node-b's own ZeroFS pod, created as node-b's agent would (by the admin here).
      const runnerB = new PodRunner({ kube: admin, namespace: NS, nodeName: "node-b" });
      const podB = runnerB.podFor(
        await instanceSpec(runnerB, settingsOf(), STATE_ROOT, "pvc-plain", false),
      );
      await admin.core.createNamespacedPod({ namespace: NS, body: podB });
      const del = (name: string) => node.core.deleteNamespacedPod({ name, namespace: NS });
      const refusedDelete = (name: string) =>
        denial(policies, DELETE_POLICY, "deletes only ZeroFS pods", `pods "${name}"`);
      const nameB = podB.metadata!.name!;
      assert.deepEqual(await refusal(del(nameB)), refusedDelete(nameB));
      // Not a ZeroFS pod, though on node-a: the node agent's own placeholder.
      assert.deepEqual(await refusal(del("agent-a")), refusedDelete("agent-a"));
      const own = await del(plain.metadata!.name!);
      assert(own.metadata?.deletionTimestamp, "the own pod was not marked for deletion");
      // RBAC grants no update or patch at all.
      const patch = await refusal(
        node.core.patchNamespacedPod({
          name: nameB,
          namespace: NS,
          body: [{ op: "add", path: "/metadata/labels/x", value: "y" }],
        }),
      );
      assert.equal(patch.code, 403);
      assert.match(patch.message, /cannot patch resource "pods"/);
    });

    await t.step("the node token reads no Secret, directly or through a pod", async () => {
      const direct = await refusal(
        node.core.readNamespacedSecret({ name: "zerofs-encryption-password", namespace: NS }),
      );
      assert.deepEqual(direct, {
        code: 403,
        message: `secrets "zerofs-encryption-password" is forbidden: User "${NODE_USER}" cannot ` +
          `get resource "secrets" in API group "" in the namespace "${NS}"`,
      });
      // The pod-based read the stand-in test performed: refused (unrelated-secret above
      // covers secretKeyRef; this is a plain secret volume the agent never uses).
      const reader = renamed(plain, "secret-reader");
      reader.spec!.volumes!.push({ name: "s", secret: { secretName: "unrelated" } });
      assert.deepEqual(
        await refusal(createAsNode(reader)),
        refusedCreate("volumes are one hostPath", "secret-reader"),
      );
      const workloads = await refusal(node.core.listNamespacedPod({ namespace: "default" }));
      assert.equal(workloads.code, 403);
      // The controller, which deletes object-store data, does read the Secret.
      const controller = await createKubeClient({
        kubeconfig: await tokenKubeconfig(cluster, "zerofs-csi-controller"),
      });
      const secret = await controller.core.readNamespacedSecret({
        name: "unrelated",
        namespace: NS,
      });
      assert.equal(atob(secret.data!.password), "not for ZeroFS");
    });

    await t.step("Events: core/v1 in any namespace, events.k8s.io not granted", async () => {
      const event = await node.core.createNamespacedEvent({
        namespace: "default",
        body: {
          metadata: { name: "node-policy-test" },
          involvedObject: { kind: "Pod", name: "app", namespace: "default" },
          reason: "Test",
          message: "hello",
          type: "Normal",
        },
      });
      assert.equal(event.reason, "Test");
      const newApi = await refusal(
        node.config.makeApiClient(node.sdk.EventsV1Api).createNamespacedEvent({
          namespace: "default",
          body: {
            metadata: { name: "node-policy-test-2" },
            eventTime: new Date(),
            reportingController: "zerofs.csi.driver",
            reportingInstance: "node-a",
            action: "Test",
            reason: "Test",
            type: "Normal",
          },
        }),
      );
      assert.equal(newApi.code, 403);
    });

    await t.step("PodRunner itself creates and deletes its pod through the policy", async () => {
      // A state root of this machine's, not the shipped /var/lib/zerofs-csi: the runner
      // writes config.toml there. The policy follows its parameter ConfigMap.
      await Deno.mkdir(stateRoot, { recursive: true, mode: 0o700 });
      const spec = await instanceSpec(
        runnerA,
        settingsOf({ podReadyTimeoutSeconds: "1" }),
        stateRoot,
        "pvc-runner",
        false,
      );
      await Deno.mkdir(spec.stateDir, { recursive: true, mode: 0o700 });
      const probe = runnerA.podFor(spec);
      assert.equal(
        await dryRunAdmitted(node, NS, probe),
        false,
        "a foreign state root was admitted",
      );
      await kubectl(cluster.kubeconfig, [
        "patch",
        "configmap",
        POLICY_PARAMS,
        "-n",
        NS,
        "--type=merge",
        "-p",
        JSON.stringify({ data: { stateDir: stateRoot } }),
      ]);
      await waitUntilTrue("the policy follows stateDir", () => dryRunAdmitted(node, NS, probe));

      const name = zerofsPodName("pvc-runner", "node-a");
      // No kubelet runs, so the pod never starts: the runner deletes it after the
      // 1 s ready timeout and waits for it to go; the admin then finishes the deletion
      // the kubelet would have confirmed.
      const ensured = runnerA.ensure(spec).then(
        () => assert.fail("a pod without a kubelet became ready"),
        (e: unknown) => e,
      );
      let seen: V1Pod | undefined;
      await waitUntilTrue("the runner deletes its pod", async () => {
        const pod = await admin.core.readNamespacedPod({ name, namespace: NS })
          .catch(() => undefined);
        seen ??= pod;
        return Boolean(pod?.metadata?.deletionTimestamp);
      });
      await kubectl(cluster.kubeconfig, [
        "delete",
        "pod",
        name,
        "-n",
        NS,
        "--grace-period=0",
        "--force",
      ]);
      const error = await ensured;
      assert(error instanceof ZeroFsNotReadyError, String(error));
      assert.equal(seen?.spec?.volumes?.[0]?.hostPath?.path, spec.stateDir);
      const audit = (await Deno.readTextFile(cluster.auditLogPath)).split("\n").filter(Boolean)
        .map((l) => JSON.parse(l))
        .filter((e) =>
          e.stage === "ResponseComplete" && e.user.username === NODE_USER &&
          e.objectRef?.name === name
        );
      const verbs = audit.map((e) => `${e.verb} ${e.responseStatus?.code}`);
      assert(verbs.includes("create 201"), verbs.join());
      assert(verbs.includes("delete 200"), verbs.join());
    });

    await t.step(
      "without the policy, RBAC alone admits a privileged pod with / on node-b",
      async () => {
        const escalation = renamed(plain, "escalation");
        escalation.spec!.nodeName = "node-b";
        escalation.spec!.containers[0].securityContext = { privileged: true };
        escalation.spec!.volumes![0].hostPath!.path = "/";
        assert.equal(await dryRunAdmitted(node, NS, escalation), false);
        await kubectl(cluster.kubeconfig, [
          "delete",
          "validatingadmissionpolicybinding",
          CREATE_POLICY,
        ]);
        await waitUntilTrue("RBAC alone admits it", () => dryRunAdmitted(node, NS, escalation));
      },
    );
  } finally {
    // undici (client-node's HTTP client) speaks HTTP/2 to the API server, and here
    // Deno 2.9.6's nghttp2 crashed the test process (assertion in
    // find_stream_on_goaway_func, or SIGSEGV) when the stopping server sent GOAWAY on
    // open sessions. Stop only after undici closed its idle sessions (after 4 s).
    await new Promise((r) => setTimeout(r, UNDICI_IDLE_CLOSE_MS));
    await cluster.stop();
    await Deno.remove(stateRoot, { recursive: true }).catch(() => {});
  }
});
