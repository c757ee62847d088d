/**
 * The images build.sh makes run as pods under the real kubelet and containerd
 * (tests/fixtures/kubelet_node.ts, standalone: a static pod, no API server), and a
 * privileged container's mount reaches the host through Bidirectional propagation,
 * as the node agent's staging and publish mounts must.
 *
 * Skipped, loudly, when the kubelet binary is missing (`.ci/install` builds it).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { readMountInfo, unmount } from "../../../blockdev/mod.ts";
import {
  E2E_IMAGES,
  findKubelet,
  KUBELET_ROOT_DIR,
  shimsOf,
  startKubeletNode,
} from "../../fixtures/kubelet_node.ts";

const POD_TIMEOUT_MS = 120_000;
const PANIC_ON_OOPS = "/proc/sys/kernel/panic_on_oops";

function kubeletMissing(): string | undefined {
  try {
    findKubelet();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

const missing = kubeletMissing();
if (missing) console.warn(`SKIPPING the real-kubelet image test: ${missing}`);

/** A static pod: the driver's and ZeroFS's entrypoints, and a mount made in a pod. */
function probePod(marker: string, mountDir: string): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "images-probe", namespace: "default" },
    spec: {
      restartPolicy: "OnFailure",
      containers: [
        {
          name: "driver",
          image: E2E_IMAGES.driver,
          imagePullPolicy: "Never",
          args: ["version"],
        },
        {
          name: "zerofs",
          image: E2E_IMAGES.zerofs,
          imagePullPolicy: "Never",
          args: ["--version"],
        },
        {
          name: "propagation",
          image: E2E_IMAGES.driver,
          imagePullPolicy: "Never",
          command: ["/bin/sh", "-c"],
          args: [
            `set -e; mkdir -p /kubelet/${mountDir}; ` +
            `mount -t tmpfs -o size=1m images-probe /kubelet/${mountDir}; ` +
            `echo ${marker} > /kubelet/${mountDir}/marker; echo mounted; exec sleep 3600`,
          ],
          securityContext: { privileged: true },
          volumeMounts: [{
            name: "kubelet-dir",
            mountPath: "/kubelet",
            mountPropagation: "Bidirectional",
          }],
        },
      ],
      volumes: [{
        name: "kubelet-dir",
        hostPath: { path: KUBELET_ROOT_DIR, type: "Directory" },
      }],
    },
  });
}

/** The first log line of each container of the pod, by container name. */
async function containerLogs(podLogsDir: string): Promise<Record<string, string>> {
  const logs: Record<string, string> = {};
  for await (const pod of Deno.readDir(podLogsDir)) {
    for await (const container of Deno.readDir(join(podLogsDir, pod.name))) {
      const text = await Deno.readTextFile(join(podLogsDir, pod.name, container.name, "0.log"))
        .catch(() => "");
      // CRI log format: "<time> <stream> <tag> <line>"
      const first = text.split("\n")[0].split(" ").slice(3).join(" ");
      if (first) logs[container.name] = first;
    }
  }
  return logs;
}

Deno.test({
  name: "the e2e images run as a pod under the real kubelet, with Bidirectional propagation",
  ignore: missing !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const marker = `marker-${crypto.randomUUID()}`;
    const mountDir = `images-test-${crypto.randomUUID().slice(0, 8)}`;
    const hostMount = join(KUBELET_ROOT_DIR, mountDir);
    const forwardBefore = await Deno.readTextFile("/proc/sys/net/ipv4/ip_forward");
    const panicOnOopsBefore = await Deno.readTextFile(PANIC_ON_OOPS);
    const kubeletRootWasMounted = (await readMountInfo()).some((m) =>
      m.mountPoint === KUBELET_ROOT_DIR
    );
    const node = await startKubeletNode();
    try {
      await Deno.writeTextFile(join(node.staticPodDir, "probe.json"), probePod(marker, mountDir));
      const deadline = Date.now() + POD_TIMEOUT_MS;
      let logs: Record<string, string> = {};
      while (Object.keys(logs).length < 3 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 1_000));
        logs = await containerLogs(node.podLogsDir);
      }
      assert.deepEqual(
        logs,
        {
          driver: "zerofs.csi.driver 0.1.0",
          zerofs: "zerofs 0.16.2",
          propagation: "mounted",
        },
        await node.logTail(),
      );
      // The tmpfs mounted inside the container is on the host, with the pod's file,
      // and in the kubelet's own mount namespace too.
      const onHost = (await readMountInfo()).find((m) => m.mountPoint === hostMount);
      assert.equal(onHost?.fsType, "tmpfs");
      assert.equal((await Deno.readTextFile(join(hostMount, "marker"))).trim(), marker);
      const kubeletMounts = await readMountInfo({
        mountInfoPath: `/proc/${node.kubeletPid}/mountinfo`,
      });
      assert.equal(kubeletMounts.find((m) => m.mountPoint === hostMount)?.fsType, "tmpfs");
      // The kubelet found the kernel tunables it wants, in its namespace only.
      const kubeletView = `/proc/${node.kubeletPid}/root/proc/sys/kernel/panic_on_oops`;
      assert.equal((await Deno.readTextFile(kubeletView)).trim(), "1");
      assert.equal(await Deno.readTextFile(PANIC_ON_OOPS), panicOnOopsBefore);
    } finally {
      // First: a mount below /var/lib/kubelet would keep stop() from undoing its bind.
      await unmount(hostMount).catch(() => {});
      await Deno.remove(hostMount, { recursive: true }).catch(() => {});
      await node.stop();
    }
    // stop() put the host back: no bridge, forwarding as it was, no pod mounts, and
    // the kubelet root unmounted again (it was not a mount point before).
    assert.ok(!(await Deno.stat("/sys/class/net/zfse2e0").catch(() => null)), "bridge left");
    assert.equal(await Deno.readTextFile("/proc/sys/net/ipv4/ip_forward"), forwardBefore);
    const mounts = await readMountInfo();
    const left = mounts.filter((m) =>
      m.mountPoint.startsWith(join(KUBELET_ROOT_DIR, "pods") + "/") ||
      m.mountPoint.startsWith("/run/zerofs-csi-e2e/")
    );
    assert.deepEqual(left.map((m) => m.mountPoint), []);
    assert.deepEqual(await shimsOf(node.containerdAddress), [], "containerd shims left");
    if (!kubeletRootWasMounted) {
      assert.ok(
        !mounts.some((m) => m.mountPoint === KUBELET_ROOT_DIR),
        "kubelet root left mounted",
      );
    }
  },
});
