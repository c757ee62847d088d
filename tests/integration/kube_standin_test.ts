/**
 * The Kubernetes API stand-in, driven by the real @kubernetes/client-node: pods run
 * as real processes in private mount namespaces, watches replay from any
 * resourceVersion, deletion honours grace periods, and RBAC comes from the manifests.
 *
 * The stand-in has RBAC but no admission policies: the probe pods below are created
 * with the node agent's account (the one with a pod grant), though a real API server
 * refuses their shape for it (tests/e2e/node_pod_policy_test.ts).
 */

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  ApiException,
  CoreV1Api,
  EventsV1Api,
  KubeConfig,
  type V1Pod,
  Watch,
} from "@kubernetes/client-node";
import { BASE_MANIFESTS_DIR, type KubeStandin, startKubeStandin } from "../fixtures/kube/mod.ts";
import { pathExists } from "../../blockdev/mod.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
const PROBE = join(HERE, "..", "fixtures", "kube", "testdata", "probe_container.sh");
const PROBE_IMAGE = "zerofs-csi.test/probe:1";
const NS = "zerofs";
const NODE_SA = "zerofs/zerofs-csi-node";

function client(api: KubeStandin, serviceAccount: string): CoreV1Api {
  const kc = new KubeConfig();
  kc.loadFromFile(api.kubeconfigFor(serviceAccount));
  return kc.makeApiClient(CoreV1Api);
}

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

function probePod(name: string, hostDir: string, mountPath: string, ignoreTerm: boolean): V1Pod {
  return {
    metadata: { name, labels: { app: "probe", variant: ignoreTerm ? "stubborn" : "polite" } },
    spec: {
      nodeName: "node-a",
      terminationGracePeriodSeconds: 120,
      containers: [{
        name: "probe",
        image: PROBE_IMAGE,
        args: [mountPath],
        env: [
          { name: "SECRET_VALUE", valueFrom: { secretKeyRef: { name: "probe-secret", key: "v" } } },
          { name: "NODE_NAME", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
          { name: "IGNORE_TERM", value: ignoreTerm ? "1" : "0" },
        ],
        volumeMounts: [{ name: "data", mountPath }],
      }],
      volumes: [{ name: "data", hostPath: { path: hostDir, type: "Directory" } }],
    },
  };
}

async function withStandin(fn: (api: KubeStandin, dir: string) => Promise<void>) {
  const dir = `/run/zerofs-csi/test-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(dir, { recursive: true });
  const api = await startKubeStandin({
    manifestsDir: BASE_MANIFESTS_DIR,
    images: { [PROBE_IMAGE]: PROBE },
    maxGracePeriodSeconds: 2,
    tempRoot: dir,
    seed: [
      {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: "probe-secret", namespace: NS },
        stringData: { v: "s3cr3t value" },
      },
      {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "zerofs-default", namespace: NS },
        data: { storageURL: "s3://bucket/prefix" },
      },
    ],
  });
  try {
    await fn(api, dir);
  } finally {
    await api.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a pod runs as a process with its hostPath, env and grace period", async () => {
  await withStandin(async (api, dir) => {
    const core = client(api, NODE_SA);
    const hostDir = join(dir, "host");
    const mountPath = join(dir, "inside");
    await Deno.mkdir(hostDir);
    await Deno.writeTextFile(join(hostDir, "marker"), "from-the-host");

    const listed = await core.listNamespacedPod({ namespace: NS });
    const fromVersion = listed.metadata!.resourceVersion!;
    const events: string[] = [];
    const kc = kcOf(api, NODE_SA);
    const liveWatch = await new Watch(kc).watch(
      `/api/v1/namespaces/${NS}/pods`,
      { resourceVersion: fromVersion, fieldSelector: "spec.nodeName=node-a" },
      (type, obj) =>
        events.push(`${type}:${obj.status?.phase}:${Boolean(obj.metadata?.deletionTimestamp)}`),
      () => {},
    );

    await core.createNamespacedPod({
      namespace: NS,
      body: probePod("polite", hostDir, mountPath, false),
    });
    const running = await waitFor("pod Running", async () => {
      const p = await core.readNamespacedPod({ name: "polite", namespace: NS });
      return p.status?.phase === "Running" && p.status.containerStatuses?.[0]?.ready
        ? p
        : undefined;
    });
    assert.deepEqual(running.spec?.nodeName, "node-a");
    await waitFor(
      "the container's output",
      async () => await pathExists(join(hostDir, "node-env")) ? true : undefined,
    );
    // The container saw the host dir at its mountPath; the host's mountPath stayed empty
    // (the bind mount lives only in the container's private mount namespace).
    assert.deepEqual(await Deno.readTextFile(join(hostDir, "seen")), "from-the-host");
    assert.deepEqual(await pathExists(join(mountPath, "marker")), false);
    assert.deepEqual(await Deno.readTextFile(join(hostDir, "secret-env")), "s3cr3t value");
    assert.deepEqual(await Deno.readTextFile(join(hostDir, "node-env")), "node-a");

    const byLabel = await core.listNamespacedPod({ namespace: NS, labelSelector: "app=probe" });
    assert.deepEqual(byLabel.items.map((p) => p.metadata?.name), ["polite"]);
    const byName = await core.listNamespacedPod({
      namespace: NS,
      fieldSelector: "metadata.name=nope",
    });
    assert.deepEqual(byName.items.length, 0);

    // A process that exits on SIGTERM ends the deletion long before the grace period.
    const started = Date.now();
    const marked = await core.deleteNamespacedPod({ name: "polite", namespace: NS });
    assert(marked.metadata?.deletionTimestamp, "a running pod is only marked for deletion");
    await waitFor("pod gone", async () => {
      try {
        await core.readNamespacedPod({ name: "polite", namespace: NS });
        return undefined;
      } catch (e) {
        return e instanceof ApiException && e.code === 404 ? true : undefined;
      }
    });
    assert(Date.now() - started < 1800, `polite pod took ${Date.now() - started} ms to go`);
    assert.deepEqual((await Deno.readTextFile(join(hostDir, "term"))).trim(), "TERM");
    assert.deepEqual(
      await pathExists(mountPath),
      false,
      "the kubelet removes mount points it created",
    );

    await waitFor(
      "DELETED event",
      () => events.includes("DELETED:Succeeded:true") ? true : undefined,
    );
    assert.deepEqual(events, [
      "ADDED:Pending:false",
      "MODIFIED:Running:false",
      "MODIFIED:Running:true",
      // The container exited 0 on SIGTERM; the kubelet reports that before removing the pod.
      "MODIFIED:Succeeded:true",
      "DELETED:Succeeded:true",
    ]);
    liveWatch.abort();

    // A watch started later from the same resourceVersion replays the same history.
    const replayed: string[] = [];
    const replay = await new Watch(kc).watch(
      `/api/v1/namespaces/${NS}/pods`,
      { resourceVersion: fromVersion },
      (type, obj) =>
        replayed.push(`${type}:${obj.status?.phase}:${Boolean(obj.metadata?.deletionTimestamp)}`),
      () => {},
    );
    await waitFor("replay", () => replayed.length >= events.length ? true : undefined);
    replay.abort();
    assert.deepEqual(replayed, events);
  });
});

Deno.test("a process ignoring SIGTERM is killed after the grace period", async () => {
  await withStandin(async (api, dir) => {
    const core = client(api, NODE_SA);
    const hostDir = join(dir, "host");
    await Deno.mkdir(hostDir);
    await Deno.writeTextFile(join(hostDir, "marker"), "x");
    await core.createNamespacedPod({
      namespace: NS,
      body: probePod("stubborn", hostDir, join(dir, "inside"), true),
    });
    await waitFor(
      "container started",
      async () => await pathExists(join(hostDir, "node-env")) ? true : undefined,
    );
    const started = Date.now();
    await core.deleteNamespacedPod({ name: "stubborn", namespace: NS, gracePeriodSeconds: 1 });
    await waitFor(
      "SIGTERM delivered",
      async () => await pathExists(join(hostDir, "term")) ? true : undefined,
    );
    const during = await core.readNamespacedPod({ name: "stubborn", namespace: NS });
    assert.deepEqual(during.metadata?.deletionGracePeriodSeconds, 1);
    await waitFor(
      "pod gone",
      () => api.objects.find(api.typeOf("v1", "Pod"), NS, "stubborn") ? undefined : true,
    );
    const elapsed = Date.now() - started;
    assert(elapsed >= 1000 && elapsed < 3000, `SIGKILL came after ${elapsed} ms, expected ~1000`);
    assert.deepEqual((await Deno.readTextFile(join(hostDir, "term"))).trim(), "TERM");
  });
});

Deno.test("a container whose secret is missing waits with CreateContainerConfigError", async () => {
  await withStandin(async (api, dir) => {
    const core = client(api, NODE_SA);
    const hostDir = join(dir, "host");
    await Deno.mkdir(hostDir);
    await Deno.writeTextFile(join(hostDir, "marker"), "x");
    const pod = probePod("nosecret", hostDir, join(dir, "inside"), false);
    pod.spec!.containers[0].env![0].valueFrom!.secretKeyRef!.name = "absent";
    await core.createNamespacedPod({ namespace: NS, body: pod });
    const waiting = await waitFor("waiting reason", async () => {
      const p = await core.readNamespacedPod({ name: "nosecret", namespace: NS });
      return p.status?.containerStatuses?.[0]?.state?.waiting;
    });
    assert.deepEqual(waiting.reason, "CreateContainerConfigError");
    assert.deepEqual(waiting.message, `secret "absent" not found`);
    assert.deepEqual(
      (await core.readNamespacedPod({ name: "nosecret", namespace: NS })).status?.phase,
      "Pending",
    );
  });
});

// What the driver's accounts may and may not do (Secrets, pods, Events) is checked on a
// real API server: tests/e2e/cluster_test.ts and tests/e2e/node_pod_policy_test.ts.
// Here only the stand-in's own RBAC check: it refuses as the API server does, since
// the pod runner and node tests rely on it to catch a request the manifests forbid.
Deno.test("the stand-in refuses what the manifests' RBAC does not grant, as the API server does", async () => {
  await withStandin(async (api) => {
    const core = client(api, NODE_SA);
    const err = await core.readNamespacedSecret({ name: "probe-secret", namespace: NS }).then(
      () => assert.fail("the stand-in let the node agent read a secret"),
      (e: unknown) => e,
    );
    assert(err instanceof ApiException);
    assert.deepEqual(err.code, 403);
    const status = JSON.parse(err.body);
    assert.deepEqual(status.kind, "Status");
    assert.deepEqual(status.reason, "Forbidden");
    // Word for word the real API server's message (node_pod_policy_test.ts asserts it there).
    assert.deepEqual(
      status.message,
      `secrets "probe-secret" is forbidden: User "system:serviceaccount:zerofs:zerofs-csi-node" cannot get resource "secrets" in API group "" in the namespace "zerofs"`,
    );
    await assert.rejects(core.listNamespacedPod({ namespace: "default" }), { code: 403 });
    const events = kcOf(api, NODE_SA).makeApiClient(EventsV1Api);
    await assert.rejects(
      events.createNamespacedEvent({
        namespace: "default",
        body: {
          metadata: { name: "e2" },
          eventTime: new Date(),
          reportingController: "zerofs.csi.driver",
          reportingInstance: "node-a",
          action: "Test",
          reason: "Test",
          type: "Normal",
        },
      }),
      { code: 403 },
    );
    const refused = api.requests.filter((r) => !r.allowed).map((r) => `${r.code} ${r.resource}`);
    assert.deepEqual(refused, ["403 secrets", "403 pods", "403 events"]);
  });
});

function kcOf(api: KubeStandin, serviceAccount: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(api.kubeconfigFor(serviceAccount));
  return kc;
}
