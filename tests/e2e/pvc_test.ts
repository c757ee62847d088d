/**
 * The user's path on a real cluster: `kubectl apply -k` of the e2e overlay
 * (tests/e2e/overlay: the dev overlay with the userspace-attach component and
 * locally built images, nothing else), then PVCs that pods write to, on a real API
 * server (tests/fixtures/kube_cluster.ts), a real kubelet with containerd
 * (tests/fixtures/kubelet_node.ts), kube-proxy and CoreDNS
 * (tests/fixtures/cluster_network.ts), the real CSI sidecars, real ZeroFS and the
 * dev overlay's in-cluster MinIO.
 *
 * One cluster and one node for the whole file; torn down at the end leaving no
 * mounts, loop devices, processes or iptables chains behind.
 *
 * Fails (never skips) naming `bash .ci/install` when a binary is missing.
 */

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { isProcessAlive, runTool } from "../../blockdev/mod.ts";
import { isExecutable } from "../fixtures/executable.ts";
import { findClusterNetworkBinaries, kubeChainsLeft } from "../fixtures/cluster_network.ts";
import { findKubeBinaries } from "../fixtures/kube_cluster.ts";
import { findKubelet, KUBELET_ROOT_DIR, NODE_GATEWAY_ADDRESS } from "../fixtures/kubelet_node.ts";
import { startNetworkedCluster } from "../fixtures/networked_cluster.ts";
import type { S3Access } from "../fixtures/s3.ts";
import { listBucketKeys } from "../helpers/bucket.ts";
import { listProcesses } from "../helpers/node_env.ts";
import { E2E_IMAGES } from "./images/mod.ts";

const NODE = "zerofs-e2e-node";
const DRIVER = "zerofs.csi.driver";
const NS = "zerofs";
/** The dev overlay's ConfigMap: `storageURL: s3://zerofs-dev/volumes`. */
const BUCKET = "zerofs-dev";
const VOLUME_PREFIX = "volumes/";
const OVERLAY = join(dirname(fileURLToPath(import.meta.url)), "overlay");
const STATE_DIR = "/var/lib/zerofs-csi";
const PLUGIN_DIR = `${KUBELET_ROOT_DIR}/plugins/${DRIVER}`;
/** The kubelet's staging directories of this driver's volumes. */
const KUBELET_STAGING_DIR = `${KUBELET_ROOT_DIR}/plugins/kubernetes.io/csi/${DRIVER}`;
const REGISTRATION_SOCKET = `${KUBELET_ROOT_DIR}/plugins_registry/${DRIVER}-reg.sock`;
const INSTALL_HINT = "run `bash .ci/install` (as root) first";

/** A loaded 2-core CI machine: generous, but every wait polls a condition. */
const INSTALL_TIMEOUT_MS = 300_000;
const POD_TIMEOUT_MS = 300_000;
const POLL_MS = 1_000;

// --- kubectl ---------------------------------------------------------------------

let kubeconfig = "";

/** `kubectl` as the cluster admin; stdout. */
async function kubectl(args: string[], stdin?: string): Promise<string> {
  const { stdout } = await runTool("kubectl", ["--kubeconfig", kubeconfig, ...args], {
    timeoutMs: 180_000,
    stdin: stdin === undefined ? undefined : new TextEncoder().encode(stdin),
  });
  return stdout;
}

/** `kubectl` whose failure is an answer: stdout, or "" on failure. */
async function kubectlOrEmpty(args: string[]): Promise<string> {
  try {
    return await kubectl(args);
  } catch (e) {
    return `(kubectl ${args.join(" ")} failed: ${(e as Error).message.slice(-500)})`;
  }
}

async function applyJson(obj: unknown): Promise<void> {
  await kubectl(["apply", "-f", "-"], JSON.stringify(obj));
}

/** One object, undefined when it does not exist. */
async function getJson(args: string[]): Promise<Record<string, unknown> | undefined> {
  const out = await kubectl(["get", ...args, "--ignore-not-found", "-o", "json"]);
  return out.trim() ? JSON.parse(out) : undefined;
}

interface PodStatus {
  metadata: { name: string };
  status: { conditions?: { type: string; status: string }[] };
}

function isReady(pod: PodStatus): boolean {
  return pod.status.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
}

/** A list's items (kubectl prints nothing for an empty list with --ignore-not-found). */
async function listItems<T>(args: string[]): Promise<T[]> {
  return (JSON.parse(await kubectl(["get", ...args, "-o", "json"])) as { items: T[] }).items;
}

/** What a failure message carries: the objects' descriptions and the driver's log tails. */
async function diagnostics(objects: string[] = []): Promise<string> {
  const parts: string[] = [];
  for (const o of objects) {
    parts.push(`--- describe ${o}\n${await kubectlOrEmpty(["describe", ...o.split(" ")])}`);
  }
  parts.push(`--- pods\n${await kubectlOrEmpty(["get", "pods", "-A", "-o", "wide"])}`);
  for (
    const [what, args] of [
      ["node agent", ["-n", NS, "logs", "ds/zerofs-csi-node", "-c", "zerofs-csi", "--tail=40"]],
      ["registrar", [
        "-n",
        NS,
        "logs",
        "ds/zerofs-csi-node",
        "-c",
        "node-driver-registrar",
        "--tail=10",
      ]],
      ["controller", [
        "-n",
        NS,
        "logs",
        "deploy/zerofs-csi-controller",
        "-c",
        "zerofs-csi",
        "--tail=30",
      ]],
      ["provisioner", [
        "-n",
        NS,
        "logs",
        "deploy/zerofs-csi-controller",
        "-c",
        "csi-provisioner",
        "--tail=15",
      ]],
      ["attacher", [
        "-n",
        NS,
        "logs",
        "deploy/zerofs-csi-controller",
        "-c",
        "csi-attacher",
        "--tail=10",
      ]],
      ["resizer", [
        "-n",
        NS,
        "logs",
        "deploy/zerofs-csi-controller",
        "-c",
        "csi-resizer",
        "--tail=10",
      ]],
    ] as const
  ) {
    parts.push(`--- ${what} log\n${await kubectlOrEmpty([...args])}`);
  }
  return parts.join("\n");
}

/** An error that ends a {@linkcode waitFor} at once: the condition can no longer come true. */
class Hopeless extends Error {}

/** Polls `check` until it returns a value; fails with the diagnostics of `objects`. */
async function waitFor<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | undefined>,
  objects: string[] = [],
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      if (e instanceof Hopeless) throw e;
      last = (e as Error).message.slice(-800);
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  throw new Error(
    `not ${what} within ${timeoutMs / 1000} s${last ? ` (last error: ${last})` : ""}\n` +
      await diagnostics(objects),
  );
}

// --- objects ----------------------------------------------------------------------

function pvc(name: string, o: { size: string; block?: boolean; storageClass?: string }) {
  return {
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: { name, namespace: "default" },
    spec: {
      accessModes: ["ReadWriteOnce"],
      storageClassName: o.storageClass ?? "zerofs",
      ...(o.block ? { volumeMode: "Block" } : {}),
      resources: { requests: { storage: o.size } },
    },
  };
}

/** A pod running `script` with the PVC at /data (a file system) or /dev/xvda (a block PVC). */
function pod(name: string, claim: string, script: string, block = false) {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: "default" },
    spec: {
      restartPolicy: "Never",
      terminationGracePeriodSeconds: 2,
      containers: [{
        name: "app",
        image: E2E_IMAGES.driver,
        imagePullPolicy: "Never",
        command: ["/bin/sh", "-c", script],
        ...(block
          ? { volumeDevices: [{ name: "vol", devicePath: "/dev/xvda" }] }
          : { volumeMounts: [{ name: "vol", mountPath: "/data" }] }),
      }],
      volumes: [{ name: "vol", persistentVolumeClaim: { claimName: claim } }],
    },
  };
}

async function podRunning(name: string): Promise<void> {
  await waitFor(`pod ${name} Ready`, POD_TIMEOUT_MS, async () => {
    const p = await getJson(["pod", name]) as {
      status?: { phase?: string; conditions?: { type: string; status: string }[] };
    };
    if (p?.status?.phase === "Failed" || p?.status?.phase === "Succeeded") {
      throw new Error(
        `pod ${name} ended: ${p.status.phase}\n${await kubectlOrEmpty(["logs", name])}`,
      );
    }
    return p?.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")
      ? true
      : undefined;
  }, [`pod ${name}`]);
}

async function deletePod(name: string): Promise<void> {
  await kubectl(["delete", "pod", name, "--ignore-not-found", "--wait=true", "--timeout=180s"]);
}

async function exec(podName: string, script: string): Promise<string> {
  return await kubectl(["exec", podName, "--", "/bin/sh", "-c", script]);
}

/** The PV bound to a PVC: its name and CSI volume handle. */
async function boundVolume(claim: string): Promise<{ pv: string; handle: string }> {
  const pv = await waitFor(`PVC ${claim} Bound`, POD_TIMEOUT_MS, async () => {
    const c = await getJson(["pvc", claim]) as {
      status?: { phase?: string };
      spec?: { volumeName?: string };
    };
    return c?.status?.phase === "Bound" ? c.spec!.volumeName! : undefined;
  }, [`pvc ${claim}`]);
  const obj = await getJson(["pv", pv]) as { spec: { csi: { volumeHandle: string } } };
  return { pv, handle: obj.spec.csi.volumeHandle };
}

// --- the node agent's restart -------------------------------------------------------

/** The node pod's agent container: pod name, restart count, readiness. */
async function agentContainer(): Promise<
  { podName: string; restartCount: number; ready: boolean }
> {
  const [p] = await listItems<{
    metadata: { name: string };
    status: { containerStatuses?: { name: string; restartCount: number; ready: boolean }[] };
  }>(["pods", "-n", NS, "-l", "app.kubernetes.io/name=zerofs-csi-node"]);
  const c = p?.status.containerStatuses?.find((s) => s.name === "zerofs-csi");
  if (!c) throw new Error(`no zerofs-csi container status in the node pod`);
  return { podName: p.metadata.name, restartCount: c.restartCount, ready: c.ready };
}

/** SIGKILL the node agent's process (found by its command line on this host); its pid. */
async function killAgentProcess(): Promise<number> {
  const pids = (await listProcesses())
    .filter(({ argv }) =>
      argv.includes("/app/main.ts") && argv.includes("node") && argv.includes("--endpoint")
    )
    .map((p) => p.pid);
  assert.equal(pids.length, 1, `node agent processes: ${pids.join(", ")}`);
  Deno.kill(pids[0], "SIGKILL");
  return pids[0];
}

/** The volume's ZeroFS pod: name and uid. */
async function zerofsPodOf(handle: string): Promise<{ name: string; uid: string }> {
  const pods = await listItems<
    { metadata: { name: string; uid: string; annotations?: Record<string, string> } }
  >([
    "pods",
    "-n",
    NS,
    "-l",
    "app.kubernetes.io/name=zerofs",
  ]);
  const found = pods.filter((p) => Object.values(p.metadata.annotations ?? {}).includes(handle));
  assert.equal(found.length, 1, `ZeroFS pods of ${handle}: ${found.map((p) => p.metadata.name)}`);
  return { name: found[0].metadata.name, uid: found[0].metadata.uid };
}

/** Wait until the writer's log holds at least `atLeast` lines; the count. */
async function waitForLines(podName: string, atLeast: number): Promise<number> {
  return await waitFor(`${atLeast} lines written by ${podName}`, POD_TIMEOUT_MS, async () => {
    const n = Number(await exec(podName, "wc -l < /data/log"));
    return n >= atLeast ? n : undefined;
  }, [`pod ${podName}`]);
}

// --- host state -------------------------------------------------------------------

async function pathExists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

/**
 * Loop devices bound to a volume's nbdfuse file: below the driver's state directory,
 * or `/nbd` once the agent container whose mount namespace held the FUSE mount is gone.
 */
async function driverLoopDevices(): Promise<string[]> {
  const { stdout } = await runTool("losetup", ["--json", "--list"], { timeoutMs: 30_000 });
  if (!stdout.trim()) return [];
  const list = JSON.parse(stdout).loopdevices as { name: string; "back-file": string }[];
  return list.filter((d) => {
    const file = d["back-file"] ?? "";
    return file.includes(STATE_DIR) || /^\/nbd( \(deleted\))?$/.test(file);
  }).map((d) => d.name);
}

/** nbdfuse processes (userspace attach) still alive on this machine, by PID. */
async function nbdfuseProcesses(): Promise<number[]> {
  return (await listProcesses())
    .filter(({ argv }) => argv[0]?.endsWith("nbdfuse") && argv.some((a) => a.includes(STATE_DIR)))
    .map((p) => p.pid);
}

async function mountsBelow(dir: string): Promise<string[]> {
  const text = await Deno.readTextFile("/proc/self/mountinfo");
  return text.split("\n").map((l) => l.split(" ")[4] ?? "").filter((m) =>
    m.startsWith(dir + "/") || m === dir
  );
}

/** Every binary this test needs, or an error naming them and `bash .ci/install`. */
function preflight(): void {
  const problems: string[] = [];
  for (const check of [findKubeBinaries, () => findKubelet(), findClusterNetworkBinaries]) {
    try {
      check();
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  const sidecars = Deno.env.get("CSI_SIDECARS_BIN") ?? "/opt/csi-sidecars/bin";
  for (const bin of ["csi-provisioner", "csi-attacher", "csi-resizer"]) {
    if (!isExecutable(`${sidecars}/${bin}`)) {
      problems.push(`no ${sidecars}/${bin} (its image is built from it)`);
    }
  }
  const imageBinaries = [
    [Deno.env.get("ZEROFS_BIN") ?? "/opt/zerofs-0.16.2/bin/zerofs", "ZeroFS"],
    [Deno.env.get("MINIO_BIN") ?? "/opt/minio/minio", "MinIO"],
    [Deno.env.get("MC_BIN") ?? "/opt/minio-mc/mc", "mc"],
  ];
  for (const [bin, image] of imageBinaries) {
    if (!isExecutable(bin)) problems.push(`no ${bin} (the ${image} image is built from it)`);
  }
  if (problems.length > 0) throw new Error(`${problems.join("; ")}; ${INSTALL_HINT}`);
}

/**
 * The dev overlay's MinIO, reached from this machine through its Service's ClusterIP
 * (kube-proxy), with the credentials of the overlay's Secret.
 */
async function inClusterS3(): Promise<S3Access> {
  const ip =
    (await kubectl(["-n", NS, "get", "service", "minio", "-o", "jsonpath={.spec.clusterIP}"]))
      .trim();
  const secret = await getJson(["-n", NS, "secret", "zerofs-aws-credentials"]) as {
    data: Record<string, string>;
  };
  const field = (key: string) => atob(secret.data[key]);
  return {
    endpoint: `http://${ip}:9000`,
    accessKeyId: field("AWS_ACCESS_KEY_ID"),
    secretAccessKey: field("AWS_SECRET_ACCESS_KEY"),
  };
}

/** Set once the install step has found the in-cluster MinIO. */
let s3: S3Access | undefined;

/** Every key under `prefix` in the overlay's bucket. */
async function bucketKeys(prefix = ""): Promise<string[]> {
  if (!s3) throw new Error("the in-cluster MinIO was not found (the install step failed)");
  return await listBucketKeys(s3, BUCKET, prefix);
}

// --- the test ------------------------------------------------------------------------

Deno.test({
  name: "kubectl apply -k, then PVCs that pods write to, on a real API server and kubelet",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    preflight();
    const hostStateBefore = {
      stateDir: await pathExists(STATE_DIR),
      pluginDir: await pathExists(PLUGIN_DIR),
    };
    const { cluster, node, stop } = await startNetworkedCluster({
      nodeName: NODE,
      // The agent and the process keeper share FUSE mounts through the state directory.
      sharedDirs: [STATE_DIR],
    });
    kubeconfig = cluster.kubeconfig;
    let installed = false;
    try {
      assert.equal(node.gatewayAddress, NODE_GATEWAY_ADDRESS);

      const passed = async (name: string, fn: () => Promise<void>) => {
        if (!await t.step(name, fn)) throw new Error(`step failed: ${name}`);
      };

      // (a) install and registration.
      await passed(
        "kubectl apply -k: controller, node agent and MinIO Running, bucket made, driver registered",
        async () => {
          installed = true;
          await kubectl(["apply", "-k", OVERLAY]);
          for (const sel of ["zerofs-csi-controller", "zerofs-csi-node", "minio"]) {
            await waitFor(`${sel} Ready`, INSTALL_TIMEOUT_MS, async () => {
              const pods = await listItems<PodStatus>([
                "pods",
                "-n",
                NS,
                "-l",
                `app.kubernetes.io/name=${sel}`,
              ]);
              return pods.length === 1 && isReady(pods[0]) ? true : undefined;
            }, [`pods -n ${NS}`]);
          }
          await waitFor(`CSINode ${NODE} listing ${DRIVER}`, INSTALL_TIMEOUT_MS, async () => {
            const csiNode = await getJson(["csinode", NODE]) as {
              spec?: { drivers?: { name: string }[] };
            };
            return csiNode?.spec?.drivers?.some((d) => d.name === DRIVER) ? true : undefined;
          }, [`csinode ${NODE}`]);
          assert.ok(await pathExists(REGISTRATION_SOCKET), `no ${REGISTRATION_SOCKET}`);
          await kubectl([
            "-n",
            NS,
            "wait",
            "--for=condition=Complete",
            "job/minio-create-bucket",
            `--timeout=${INSTALL_TIMEOUT_MS / 1000}s`,
          ]);
          s3 = await inClusterS3();
        },
      );

      // (a) ext4: write, recreate the pod, read; delete the PVC, the objects go.
      await passed(
        "ext4 PVC: written, read back by a new pod; deleted, its objects gone",
        async () => {
          const content = `zerofs-e2e-${crypto.randomUUID()}`;
          await applyJson(pvc("data", { size: "1Gi" }));
          await applyJson(
            pod(
              "writer",
              "data",
              `printf %s ${content} > /data/hello.txt && sync && exec sleep 3600`,
            ),
          );
          await podRunning("writer");
          assert.equal(await exec("writer", "cat /data/hello.txt"), content);
          assert.match(await exec("writer", "df -T /data | tail -n 1"), /\sext4\s/);
          const { pv, handle } = await boundVolume("data");
          await deletePod("writer");
          await applyJson(pod("reader", "data", "exec sleep 3600"));
          await podRunning("reader");
          assert.equal(await exec("reader", "cat /data/hello.txt"), content);
          await deletePod("reader");

          const prefix = `${VOLUME_PREFIX}${handle}/`;
          const before = await bucketKeys(prefix);
          assert.ok(
            before.length > 0,
            `no objects under ${prefix}: ${(await bucketKeys()).join(", ")}`,
          );
          await kubectl(["delete", "pvc", "data", "--wait=true", "--timeout=180s"]);
          await waitFor(
            `PV ${pv} deleted`,
            POD_TIMEOUT_MS,
            async () => (await getJson(["pv", pv])) ? undefined : true,
            [
              `pv ${pv}`,
            ],
          );
          const after = await bucketKeys(prefix);
          assert.deepEqual(after, [], `objects left under ${prefix}`);
        },
      );

      // (b) a block PVC through volumeDevices.
      await passed(
        "block PVC: bytes written to the device are read back by a new pod",
        async () => {
          const content = `zerofs-block-${crypto.randomUUID()}`;
          await applyJson(pvc("raw", { size: "1Gi", block: true }));
          await applyJson(
            pod(
              "block-writer",
              "raw",
              `printf %s ${content} | dd of=/dev/xvda bs=4096 seek=256 conv=sync,fsync && exec sleep 3600`,
              true,
            ),
          );
          await podRunning("block-writer");
          await deletePod("block-writer");
          await applyJson(pod("block-reader", "raw", "exec sleep 3600", true));
          await podRunning("block-reader");
          const read = await exec(
            "block-reader",
            `dd if=/dev/xvda bs=4096 skip=256 count=1 2>/dev/null | head -c ${content.length}`,
          );
          assert.equal(read, content);
          const size = await exec("block-reader", "blockdev --getsize64 /dev/xvda");
          assert.equal(Number(size.trim()), 1024 ** 3);
          await deletePod("block-reader");
          await kubectl(["delete", "pvc", "raw", "--wait=true", "--timeout=180s"]);
        },
      );

      // (c) offline expansion through csi-resizer.
      await passed(
        "kubectl patch grows the PVC; the restarted pod sees the larger file system",
        async () => {
          await applyJson(pvc("grow", { size: "1Gi" }));
          await applyJson(pod("grow-1", "grow", "exec sleep 3600"));
          await podRunning("grow-1");
          const sizeOf = async (p: string) =>
            Number((await exec(p, "df -B1 --output=size /data | tail -n 1")).trim());
          const before = await sizeOf("grow-1");
          assert.ok(before < 1024 ** 3, `1 GiB volume shows ${before} bytes`);
          const { pv } = await boundVolume("grow");
          await deletePod("grow-1");
          // Patched at once: the VolumeAttachment usually outlives the pod by seconds, so
          // csi-resizer's first ControllerExpandVolume meets a published volume. Offline
          // expansion: the driver refuses (FAILED_PRECONDITION, nothing changes), the resizer
          // retries, and the expansion happens after the detach; the next attach carries the
          // new size to NodeStageVolume.
          /** A VolumeAttachment of the PV that is not on its way out. */
          const attached = async () =>
            (await listItems<{
              metadata: { deletionTimestamp?: string };
              spec: { source: { persistentVolumeName?: string } };
            }>(["volumeattachments"])).some((a) =>
              a.spec.source.persistentVolumeName === pv && !a.metadata.deletionTimestamp
            );
          const attachedAtPatch = await attached();
          await kubectl([
            "patch",
            "pvc",
            "grow",
            "-p",
            JSON.stringify({ spec: { resources: { requests: { storage: "2Gi" } } } }),
          ]);
          await waitFor(
            "the PV grown to 2Gi by ControllerExpandVolume",
            POD_TIMEOUT_MS,
            async () => {
              const v = await getJson(["pv", pv]) as { spec: { capacity: { storage: string } } };
              if (v.spec.capacity.storage !== "2Gi") return undefined;
              if (await attached()) throw new Hopeless(`PV ${pv} expanded while still attached`);
              return true;
            },
            ["pvc grow", `pv ${pv}`, "volumeattachments"],
          );
          const refusals = (await kubectl([
            "get",
            "events",
            "--field-selector",
            "involvedObject.kind=PersistentVolumeClaim,involvedObject.name=grow," +
            "reason=VolumeResizeFailed",
            "-o",
            'jsonpath={range .items[*]}{.message}{"\\n"}{end}',
          ])).trim();
          console.log(
            `attached when patched: ${attachedAtPatch}; resizer refusals:\n${refusals || "(none)"}`,
          );
          if (refusals) {
            assert.match(refusals, new RegExp(`published to node\\(s\\) ${NODE}`), refusals);
            assert.match(refusals, /delete the pods that use it/, refusals);
          }
          await applyJson(pod("grow-2", "grow", "exec sleep 3600"));
          await podRunning("grow-2");
          await waitFor("the PVC's status capacity 2Gi", POD_TIMEOUT_MS, async () => {
            const c = await getJson(["pvc", "grow"]) as {
              status: { capacity?: { storage?: string } };
            };
            return c.status.capacity?.storage === "2Gi" ? true : undefined;
          }, ["pvc grow"]);
          const after = await sizeOf("grow-2");
          assert.ok(
            after > 1.5 * 1024 ** 3,
            `after growing to 2 GiB the file system has ${after} bytes`,
          );
          // Nothing left failed: the kubelet's NodeExpandVolume found the volume staged at
          // its new size.
          const claim = await getJson(["pvc", "grow"]) as {
            status: {
              conditions?: { type: string; message?: string }[];
              allocatedResourceStatuses?: Record<string, string>;
            };
          };
          assert.deepEqual(
            (claim.status.conditions ?? []).map((c) => c.type),
            [],
            JSON.stringify(claim.status),
          );
          assert.ok(
            !Object.values(claim.status.allocatedResourceStatuses ?? {}).some((v) =>
              /Failed|Infeasible/.test(v)
            ),
            JSON.stringify(claim.status),
          );
          await deletePod("grow-2");
          await kubectl(["delete", "pvc", "grow", "--wait=true", "--timeout=180s"]);
        },
      );

      // (d) a broken ConfigMap: a Warning event on the PVC.
      await passed(
        "a PVC whose StorageClass names a broken ConfigMap gets a Warning event",
        async () => {
          await applyJson({
            apiVersion: "v1",
            kind: "ConfigMap",
            metadata: { name: "zerofs-broken", namespace: NS },
            data: { storageURL: "not-a-url" },
          });
          await applyJson({
            apiVersion: "storage.k8s.io/v1",
            kind: "StorageClass",
            metadata: { name: "zerofs-broken" },
            provisioner: DRIVER,
            parameters: { configMapName: "zerofs-broken" },
            volumeBindingMode: "Immediate",
            reclaimPolicy: "Delete",
          });
          await applyJson(pvc("broken", { size: "1Gi", storageClass: "zerofs-broken" }));
          const described = await waitFor(
            "a Warning event on PVC broken",
            POD_TIMEOUT_MS,
            async () => {
              const text = await kubectl(["describe", "pvc", "broken"]);
              return /Warning\s+ProvisioningFailed/.test(text) ? text : undefined;
            },
            ["pvc broken"],
          );
          assert.match(described, /storageURL/, described);
          await kubectl(["delete", "pvc", "broken", "--wait=true", "--timeout=60s"]);
          await kubectl(["delete", "storageclass", "zerofs-broken"]);
          await kubectl(["-n", NS, "delete", "configmap", "zerofs-broken"]);
        },
      );

      // (e) the node agent's container restarted (SIGKILL, as a crash) under a writing pod.
      await passed(
        "node agent restarted under a writing pod: no write fails, ZeroFS's pod kept",
        async () => {
          await applyJson(pvc("busy", { size: "1Gi" }));
          // Each line is appended and fsynced (`sync FILE` reports a failed fsync); any
          // failure ends the pod with "write N failed".
          await applyJson(pod(
            "busy-writer",
            "busy",
            `i=0; while true; do i=$((i+1)); echo $i >> /data/log && sync /data/log || ` +
              `{ echo "write $i failed" >&2; exit 1; }; sleep 0.1; done`,
          ));
          await podRunning("busy-writer");
          const { handle } = await boundVolume("busy");
          const zerofsPod = await zerofsPodOf(handle);
          const linesBefore = await waitForLines("busy-writer", 5);
          const agent = await agentContainer();

          const killed = await killAgentProcess();
          await waitFor("the agent container restarted and Ready", INSTALL_TIMEOUT_MS, async () => {
            const now = await agentContainer();
            return now.restartCount > agent.restartCount && now.ready ? now : undefined;
          }, [`pods -n ${NS}`]);
          assert.ok(!(await isProcessAlive(killed)), `agent process ${killed} still runs`);
          // The writer kept going across the restart, and is still going after it.
          const linesAfter = await waitForLines("busy-writer", linesBefore + 20);
          assert.ok(linesAfter > linesBefore);
          const writer = await getJson(["pod", "busy-writer"]) as {
            status: { phase: string; containerStatuses: { restartCount: number }[] };
          };
          assert.equal(writer.status.phase, "Running");
          assert.equal(writer.status.containerStatuses[0].restartCount, 0);
          assert.doesNotMatch(await kubectl(["logs", "busy-writer"]), /failed/);
          // The same ZeroFS pod (same uid), and both pods visible to the user.
          assert.equal((await zerofsPodOf(handle)).uid, zerofsPod.uid);
          const listed = await kubectl(["-n", NS, "get", "pods", "-o", "name"]);
          assert.match(listed, new RegExp(`pod/${zerofsPod.name}\\b`));
          assert.match(listed, new RegExp(`pod/${agent.podName}\\b`));

          // The restarted agent unstages what the old one staged: device and nbdfuse gone.
          const lines = await exec("busy-writer", "wc -l < /data/log");
          await deletePod("busy-writer");
          await applyJson(pod("busy-reader", "busy", "exec sleep 3600"));
          await podRunning("busy-reader");
          const reread = Number(await exec("busy-reader", "wc -l < /data/log"));
          assert.ok(reread >= Number(lines), `${reread} lines after restage, ${lines} before`);
          await deletePod("busy-reader");
          await kubectl(["delete", "pvc", "busy", "--wait=true", "--timeout=180s"]);
          await waitFor("busy's device and nbdfuse released", POD_TIMEOUT_MS, async () => {
            return (await driverLoopDevices()).length === 0 &&
                (await nbdfuseProcesses()).length === 0
              ? true
              : undefined;
          }, [`pods -n ${NS}`]);
        },
      );

      // The manifests' liveness probes (livenessprobe and registrar stand-ins) held all along.
      await passed(
        "liveness probes pass: none failed, no restart but the killed agent's",
        async () => {
          const events = await listItems<{ reason: string; message: string }>([
            "events",
            "-n",
            NS,
          ]);
          // Readiness may fail while a container starts (MinIO's does); liveness never may.
          const unhealthy = events.filter((e) =>
            e.reason === "Unhealthy" && e.message.startsWith("Liveness probe failed")
          );
          assert.deepEqual(unhealthy.map((e) => e.message), [], "failed liveness probes");
          const probed = events.filter((e) => e.reason === "Started");
          assert.ok(probed.length > 0, "no container start events: the event list is wrong");
          const restarts = (await listItems<{
            metadata: { name: string };
            status: { containerStatuses?: { name: string; restartCount: number }[] };
          }>(["pods", "-n", NS])).flatMap((p) =>
            (p.status.containerStatuses ?? []).map((c) =>
              `${p.metadata.name}/${c.name}=${c.restartCount}`
            )
          );
          const node = restarts.filter((r) => r.startsWith("zerofs-csi-node-"));
          assert.ok(node.some((r) => r.endsWith("/zerofs-csi=1")), restarts.join(" "));
          assert.deepEqual(
            restarts.filter((r) =>
              !r.endsWith("=0") && !/^zerofs-csi-node-[^/]+\/zerofs-csi=1$/.test(r)
            ),
            [],
          );
        },
      );

      // (f) removal.
      await passed("kubectl delete -k removes everything the overlay made", async () => {
        await kubectl([
          "delete",
          "pods",
          "--all",
          "-n",
          "default",
          "--wait=true",
          "--timeout=180s",
        ]);
        await kubectl(["delete", "pvc", "--all", "-n", "default", "--wait=true", "--timeout=180s"]);
        await waitFor("every PV gone", POD_TIMEOUT_MS, async () => {
          return (await listItems(["pv"])).length === 0 ? true : undefined;
        }, ["pv"]);
        const made = (await kubectl(["kustomize", OVERLAY])).trim();
        await kubectl(["delete", "-k", OVERLAY, "--wait=true", "--timeout=180s"]);
        const left = await kubectl(["get", "-f", "-", "--ignore-not-found", "-o", "name"], made);
        assert.equal(left.trim(), "", `left after delete -k:\n${left}`);
        installed = false;
      });
    } finally {
      // Workloads first, so the driver unstages what it staged; then the rest.
      if (installed) {
        await kubectlOrEmpty([
          "delete",
          "pods",
          "--all",
          "-n",
          "default",
          "--wait=true",
          "--timeout=120s",
        ]);
        await kubectlOrEmpty([
          "delete",
          "pvc",
          "--all",
          "-n",
          "default",
          "--wait=true",
          "--timeout=180s",
        ]);
        await kubectlOrEmpty(["delete", "-k", OVERLAY, "--wait=true", "--timeout=120s"]);
      }
      const errors: string[] = [];
      await stop().catch((e) => errors.push(String(e)));
      const leftLoops = await driverLoopDevices().catch((e) => [String(e)]);
      for (const dev of leftLoops) {
        await runTool("losetup", ["-d", dev], { timeoutMs: 30_000 }).catch(() => {});
      }
      const leftFuse = await nbdfuseProcesses();
      for (const pid of leftFuse) Deno.kill(pid, "SIGKILL");
      const leftMounts = [
        ...await mountsBelow(STATE_DIR),
        ...await mountsBelow(PLUGIN_DIR),
        ...await mountsBelow(KUBELET_STAGING_DIR),
      ];
      if (leftMounts.length === 0) {
        if (!hostStateBefore.stateDir) {
          await Deno.remove(STATE_DIR, { recursive: true }).catch(() => {});
        }
        if (!hostStateBefore.pluginDir) {
          await Deno.remove(PLUGIN_DIR, { recursive: true }).catch(() => {});
        }
        await Deno.remove(REGISTRATION_SOCKET).catch(() => {});
        await Deno.remove(KUBELET_STAGING_DIR, { recursive: true }).catch(() => {});
      }
      const leftChains = await kubeChainsLeft();
      if (leftChains.length) errors.push(`iptables chains left: ${leftChains.join(", ")}`);
      if (leftLoops.length) errors.push(`loop devices left: ${leftLoops.join(", ")}`);
      if (leftFuse.length) errors.push(`nbdfuse processes left: ${leftFuse.join(", ")}`);
      if (leftMounts.length) errors.push(`mounts left: ${leftMounts.join(", ")}`);
      // deno-lint-ignore no-unsafe-finally
      if (errors.length) throw new Error(`teardown: ${errors.join("; ")}`);
    }
  },
});
