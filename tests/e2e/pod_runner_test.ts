/**
 * The pod runner on a real Kubernetes (tests/helpers/kube_node_setup.ts): a real
 * API server with the manifests' RBAC and node-pod admission policies, a real
 * kubelet + containerd node running the real ZeroFS 0.16.2 image against MinIO,
 * and the node agent's ServiceAccount token bound to a pod on that node.
 * Readiness is proven by real 9P and NBD handshakes through the host paths of
 * the volume's state directory; requests are read from the API server's audit log.
 *
 * One kubelet per machine: never run this beside another kubelet test.
 * Run as root: `deno test -A tests/e2e/pod_runner_test.ts`.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import type { V1Pod } from "@kubernetes/client-node";
import {
  checkReady,
  type InstanceSpec,
  PodRunner,
  resolveSettings,
  volumePaths,
  ZeroFsNotReadyError,
  zerofsPodName,
} from "../../zerofs/mod.ts";
import { createKubeClient, type KubeClient } from "../../kube/mod.ts";
import { buildInstanceSpec } from "../../csi/mod.ts";
import { isStillRunning, type ProcessInfo } from "../helpers/node_env.ts";
import {
  type AuditedRequest,
  containerProcesses,
  type KubeNodeSetup,
  NODE,
  NS,
  recordPodEvents,
  startKubeNodeSetup,
  ZEROFS_IMAGE,
} from "../helpers/kube_node_setup.ts";

const PASSWORD = "pod-runner-test-password";
const BUCKET = "podrunner";
/** A loaded 2-core machine: the ready timeout is never what a step waits for. */
const READY_TIMEOUT_SECONDS = "300";
/** Long enough for the kubelet to set up the sandbox and report the missing Secret. */
const MISSING_SECRET_TIMEOUT_SECONDS = 30;
const SECRETS = {
  password: "zerofs-encryption-password",
  aws: "zerofs-aws-credentials",
  /** An AWS Secret with neither credential key: ZeroFS cannot expand its `[aws]` references. */
  keyless: "zerofs-aws-keyless",
  missing: "no-such-secret",
};

/** `actual` cut down to the keys (recursively, arrays by index) that `shape` has. */
function projected(actual: unknown, shape: unknown): unknown {
  if (Array.isArray(shape)) {
    if (!Array.isArray(actual)) return actual;
    return actual.map((a, i) => i < shape.length ? projected(a, shape[i]) : a);
  }
  if (shape && typeof shape === "object") {
    if (!actual || typeof actual !== "object") return actual;
    return Object.fromEntries(
      Object.keys(shape).map((k) => [
        k,
        projected((actual as Record<string, unknown>)[k], (shape as Record<string, unknown>)[k]),
      ]),
    );
  }
  return actual;
}

/** `runner.ensure`, whose failure carries ZeroFS's last log lines (the pod's termination message). */
async function ensureReady(runner: PodRunner, spec: InstanceSpec) {
  try {
    return await runner.ensure(spec);
  } catch (e) {
    if (e instanceof ZeroFsNotReadyError) e.message += `\nZeroFS's last log lines:\n${e.logTail}`;
    throw e;
  }
}

async function stillRunning(ps: ProcessInfo[]): Promise<number[]> {
  const alive: number[] = [];
  for (const p of ps) if (await isStillRunning(p)) alive.push(p.pid);
  return alive;
}

function podRequests(requests: AuditedRequest[], name: string, verbs: string[]): string[] {
  return requests
    .filter((r) => r.resource === "pods" && r.name === name && !r.dryRun && verbs.includes(r.verb))
    .map((r) => r.verb);
}

Deno.test({
  name: "pod runner: the real ZeroFS in real pods on a real kubelet, through the node's policy",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const dir = `/run/zerofs-csi/test-${crypto.randomUUID().slice(0, 8)}`;
    const stateRoot = join(dir, "state");
    await Deno.mkdir(stateRoot, { recursive: true, mode: 0o700 });
    let setup: KubeNodeSetup | undefined;
    try {
      setup = await startKubeNodeSetup({ stateRoot, secretNames: Object.values(SECRETS) });
      const { s3, admin } = setup;
      await s3.createBucket(BUCKET);
      await setup.apply(
        secret(SECRETS.password, { password: PASSWORD }),
        // The original driver's key names (username/password): the runner's fallback keys.
        secret(SECRETS.aws, { username: s3.accessKeyId, password: s3.secretAccessKey }),
        secret(SECRETS.keyless, { region: "us-east-1" }),
      );
      const kube: KubeClient = await createKubeClient({ kubeconfig: setup.nodeKubeconfig });
      const newRunner = () => new PodRunner({ kube, namespace: NS, nodeName: NODE });
      const runner = newRunner();
      const specFor = async (
        volumeId: string,
        configMap: Record<string, string> = {},
      ): Promise<InstanceSpec> => {
        const settings = resolveSettings({
          parameters: {},
          configMap: {
            storageURL: `s3://${BUCKET}/volumes`,
            awsEndpoint: s3.endpoint,
            awsAllowHTTP: "true",
            encryptionPasswordSecretName: SECRETS.password,
            awsCredentialsSecretName: SECRETS.aws,
            zerofsImage: ZEROFS_IMAGE,
            cacheDiskSizeGB: "2",
            podReadyTimeoutSeconds: READY_TIMEOUT_SECONDS,
            ...configMap,
          },
        });
        const paths = volumePaths(stateRoot, volumeId);
        await Deno.mkdir(paths.dir, { recursive: true, mode: 0o700 });
        const version = await runner.version(settings);
        return buildInstanceSpec(runner, {
          volumeId,
          paths,
          readOnly: false,
          settings,
          secrets: {},
          version,
        });
      };
      const s = setup;
      const passed = async (name: string, fn: () => Promise<void>) => {
        if (!await t.step(name, fn)) {
          throw new Error(`step failed: ${name}\n${await s.node.logTail()}`);
        }
      };

      await passed(
        "ensure creates exactly this pod, ready through the host sockets; adopts; stop leaves nothing",
        async () => {
          const volumeId = "pvc-pod-runner-1";
          const spec = await specFor(volumeId, {
            rustLog: "info,zerofs=debug",
            cpuRequest: "250m",
            memoryLimit: "2Gi",
          });
          await s.waitUntilAdmitted(runner.podFor(spec));
          const name = zerofsPodName(volumeId, NODE);
          const status = await ensureReady(runner, spec);
          assert.equal(status.running, true);
          assert.equal(status.ready, true);
          assert.equal(status.podName, name);
          assert.equal(status.configHash, spec.configHash);

          const pod = await s.pod(name);
          assert.ok(pod, "the pod exists");
          assert.equal(pod.status?.phase, "Running");
          const labels = pod.metadata!.labels!;
          assert.equal(labels["app.kubernetes.io/name"], "zerofs");
          assert.equal(labels["zerofs.csi.driver/volume-dir"], spec.stateDir.split("/").at(-1));
          assert.equal(labels["zerofs.csi.driver/node"], NODE);
          const annotations = pod.metadata!.annotations!;
          assert.equal(annotations["zerofs.csi.driver/volume-id"], volumeId);
          assert.equal(annotations["zerofs.csi.driver/config-hash"], spec.configHash);
          assert.match(annotations["zerofs.csi.driver/pod-hash"], /^[0-9a-f]{64}$/);
          const ref = (name: string, key: string, optional?: boolean) => ({
            secretKeyRef: { name, key, ...(optional ? { optional } : {}) },
          });
          // What the runner asked for; the API server adds its defaults around it.
          const expected = {
            nodeName: NODE,
            restartPolicy: "Never",
            priorityClassName: "system-node-critical",
            terminationGracePeriodSeconds: 120,
            tolerations: [{ operator: "Exists" }],
            automountServiceAccountToken: false,
            enableServiceLinks: false,
            securityContext: { seccompProfile: { type: "RuntimeDefault" } },
            // The state directory is the only hostPath; the cache an emptyDir with a
            // limit (3000M, which the API server writes as 3G).
            volumes: [
              { name: "state", hostPath: { path: spec.stateDir, type: "Directory" } },
              { name: "cache", emptyDir: { sizeLimit: "3G" } },
            ],
            containers: [{
              name: "zerofs",
              image: ZEROFS_IMAGE,
              args: ["run", "-c", "/zerofs/config.toml"],
              env: [
                {
                  name: "ZEROFS_ENCRYPTION_PASSWORD",
                  valueFrom: ref(SECRETS.password, "password"),
                },
                { name: "AWS_ACCESS_KEY_ID", valueFrom: ref(SECRETS.aws, "username", true) },
                {
                  name: "AWS_ACCESS_KEY_ID",
                  valueFrom: ref(SECRETS.aws, "AWS_ACCESS_KEY_ID", true),
                },
                { name: "AWS_SECRET_ACCESS_KEY", valueFrom: ref(SECRETS.aws, "password", true) },
                {
                  name: "AWS_SECRET_ACCESS_KEY",
                  valueFrom: ref(SECRETS.aws, "AWS_SECRET_ACCESS_KEY", true),
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
            }],
          };
          assert.equal(pod.spec!.volumes!.length, 2, "no other volume");
          assert.equal(pod.spec!.containers.length, 1, "one container");
          assert.equal(pod.spec!.initContainers, undefined, "no init container");
          assert.deepEqual(pod.spec!.containers[0].env!.length, 6, "no other env");
          assert.deepEqual(projected(pod.spec, expected), expected);
          // config.toml: written by the runner, private, naming container paths and env
          // references only.
          const configPath = join(spec.stateDir, "config.toml");
          assert.equal((await Deno.stat(configPath)).mode! & 0o777, 0o600);
          const config = await Deno.readTextFile(configPath);
          assert.equal(config, spec.configToml);
          assert.match(config, /unix_socket = "\/zerofs\/9p\.sock"/);
          assert.match(config, /dir = "\/cache"/);
          assert.ok(
            !config.includes(PASSWORD) && !config.includes(s3.secretAccessKey),
            "no secret in config.toml",
          );
          // Real handshakes through the host paths (the sockets live in the hostPath).
          assert.deepEqual(await checkReady(spec, { timeoutMs: 10_000 }), { ready: true });
          const processes = await containerProcesses(pod, "zerofs");
          assert.ok(
            processes.some((p) =>
              p.argv[0].endsWith("zerofs") &&
              p.argv.slice(1).join(" ") === "run -c /zerofs/config.toml"
            ),
            `the real ZeroFS runs in the container: ${
              JSON.stringify(processes.map((p) => p.argv))
            }`,
          );

          // Same spec again, and from a new runner (an agent restart): adopted, not duplicated.
          const again = await runner.ensure(spec);
          assert.equal(again.ready, true);
          const adopted = await newRunner().ensure(spec);
          assert.equal(adopted.ready, true);
          assert.deepEqual(
            podRequests(await s.nodeRequests(), name, ["create"]),
            ["create"],
            "one pod created in all",
          );
          assert.equal((await s.pod(name))?.metadata?.uid, pod.metadata!.uid);
          const st = await newRunner().status(volumeId, spec.stateDir);
          assert.deepEqual(
            {
              running: st.running,
              ready: st.ready,
              podName: st.podName,
              configHash: st.configHash,
            },
            { running: true, ready: true, podName: name, configHash: spec.configHash },
          );

          await runner.stop(volumeId, spec.stateDir);
          assert.equal(await s.pod(name), undefined, "the pod is gone when stop returns");
          assert.deepEqual(await stillRunning(processes), [], "no process of the pod is left");
          await assert.rejects(Deno.lstat(join(spec.stateDir, "9p.sock")), Deno.errors.NotFound);
          await assert.rejects(Deno.lstat(join(spec.stateDir, "nbd.sock")), Deno.errors.NotFound);
          await runner.stop(volumeId, spec.stateDir); // idempotent
          const after = await runner.status(volumeId, spec.stateDir);
          assert.equal(after.running, false);
          assert.equal(after.ready, false);
          assert.match(after.reason ?? "", /no ZeroFS pod zerofs\/zerofs-/);
          assert.deepEqual(
            podRequests(await s.nodeRequests(), name, ["delete"]),
            ["delete"],
            "the second stop found nothing to delete",
          );
        },
      );

      await passed(
        "a changed config replaces the pod, the old one gone before the new one exists",
        async () => {
          const volumeId = "pvc-pod-runner-2";
          const name = zerofsPodName(volumeId, NODE);
          const first = await specFor(volumeId);
          await ensureReady(runner, first);
          const old = (await s.pod(name))!;
          const oldUid = old.metadata!.uid!;
          const oldProcesses = await containerProcesses(old, "zerofs");
          assert.ok(oldProcesses.length > 0);
          const second = await specFor(volumeId, { cacheMemorySizeGB: "0.5" });
          assert.notEqual(second.configHash, first.configHash);

          const recorder = await recordPodEvents(admin, name);
          let now: V1Pod;
          try {
            const status = await ensureReady(runner, second);
            assert.equal(status.ready, true);
            now = (await s.pod(name))!;
          } finally {
            recorder.stop();
          }
          assert.notEqual(now.metadata!.uid, oldUid);
          assert.equal(
            now.metadata!.annotations!["zerofs.csi.driver/config-hash"],
            second.configHash,
          );
          assert.match(
            await Deno.readTextFile(join(second.stateDir, "config.toml")),
            /memory_size_gb = 0\.5/,
          );
          assert.deepEqual(await stillRunning(oldProcesses), []);
          assert.deepEqual(await checkReady(second, { timeoutMs: 10_000 }), { ready: true });

          // The watch's order (the store's): the old pod's removal precedes the new pod's creation.
          const events = recorder.events;
          const removed = events.findIndex(([type, uid]) => type === "DELETED" && uid === oldUid);
          const added = events.findIndex(([, uid]) => uid === now.metadata!.uid);
          assert.ok(removed >= 0 && added >= 0, `both events seen: ${JSON.stringify(events)}`);
          assert.ok(removed < added, `old pod gone before the new one: ${JSON.stringify(events)}`);
          // And the requests: delete, then create, by the node agent.
          assert.deepEqual(
            podRequests(await s.nodeRequests(), name, ["create", "delete"]),
            ["create", "delete", "create"],
          );
          await runner.stop(volumeId, second.stateDir);
          assert.equal(await s.pod(name), undefined);
        },
      );

      await passed(
        "a missing Secret fails within podReadyTimeoutSeconds, naming it; no pod is left",
        async () => {
          const volumeId = "pvc-pod-runner-3";
          const spec = await specFor(volumeId, {
            encryptionPasswordSecretName: SECRETS.missing,
            podReadyTimeoutSeconds: String(MISSING_SECRET_TIMEOUT_SECONDS),
          });
          const started = Date.now();
          const err = await runner.ensure(spec).then(
            () => assert.fail("ensure succeeded without the Secret"),
            (e) => e,
          );
          const elapsed = Date.now() - started;
          assert.ok(err instanceof ZeroFsNotReadyError, String(err));
          const timeoutMs = MISSING_SECRET_TIMEOUT_SECONDS * 1_000;
          assert.match(err.message, new RegExp(`did not start within ${timeoutMs} ms`));
          assert.match(
            err.message,
            /CreateContainerConfigError \(secret "no-such-secret" not found\)/,
          );
          assert.match(err.message, /kubectl logs -n zerofs zerofs-/);
          assert.ok(elapsed >= timeoutMs, `failed after ${elapsed} ms`);
          assert.equal(await s.pod(zerofsPodName(volumeId, NODE)), undefined, "the pod is removed");
        },
      );

      await passed("ZeroFS exiting at start fails at once with its last log lines", async () => {
        const volumeId = "pvc-pod-runner-4";
        const spec = await specFor(volumeId, { awsCredentialsSecretName: SECRETS.keyless });
        const err = await runner.ensure(spec).then(
          () => assert.fail("ensure succeeded with a Secret lacking the credentials"),
          (e) => e,
        );
        assert.ok(err instanceof ZeroFsNotReadyError, String(err));
        // On the pod's failure, not the (300 s) ready timeout.
        assert.doesNotMatch(err.message, /did not start within/);
        assert.match(err.message, /ZeroFS pod is Failed, .*container exited with code 1/);
        assert.match(
          err.logTail,
          // Which of the two ZeroFS looks up first varies from run to run.
          /Failed to expand environment variable: .*'AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY)'.* not found/s,
          `ZeroFS's own words: ${err.logTail}`,
        );
        assert.equal(await s.pod(zerofsPodName(volumeId, NODE)), undefined, "the pod is removed");
      });

      await passed("every request of the runner was allowed by the manifests", async () => {
        const requests = (await s.nodeRequests()).filter((r) => !r.dryRun);
        assert.ok(requests.length > 0);
        const denied = requests.filter((r) =>
          r.decision !== "allow" || r.code === 403 || r.code === 422
        );
        assert.deepEqual(denied, []);
        assert.equal(
          requests.filter((r) => r.resource === "secrets").length,
          0,
          "the runner never reads a Secret",
        );
      });
    } finally {
      await setup?.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

function secret(name: string, stringData: Record<string, string>) {
  return { apiVersion: "v1", kind: "Secret", metadata: { name, namespace: NS }, stringData };
}
