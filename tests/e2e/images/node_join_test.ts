/**
 * The kubelet node joins the real control plane (tests/fixtures/kube_cluster.ts) as
 * `system:node:<name>` (Node authorizer), turns Ready, and runs a pod created
 * through the API server from a locally built image: scheduled to it, Running,
 * its container's output in the node's pod logs.
 *
 * Skipped, loudly, when a Kubernetes binary is missing (`.ci/install` builds them).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { runTool } from "../../../blockdev/mod.ts";
import { findKubeBinaries, startKubeCluster } from "../../fixtures/kube_cluster.ts";
import { findKubelet, shimsOf, startKubeletNode } from "../../fixtures/kubelet_node.ts";
import { E2E_IMAGES } from "./mod.ts";

const NODE = "zerofs-e2e-node";

function missingBinaries(): string | undefined {
  try {
    findKubeBinaries();
    findKubelet();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

const missing = missingBinaries();
if (missing) console.warn(`SKIPPING the kubelet node join test: ${missing}`);

/** `kubectl` as the cluster admin; stdout. */
async function kubectl(kubeconfig: string, args: string[], stdin?: string): Promise<string> {
  const { stdout } = await runTool("kubectl", ["--kubeconfig", kubeconfig, ...args], {
    timeoutMs: 150_000,
    stdin: stdin === undefined ? undefined : new TextEncoder().encode(stdin),
  });
  return stdout;
}

Deno.test({
  name: "a pod created through the real API server runs on the real kubelet node",
  ignore: missing !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const cluster = await startKubeCluster({
      users: [{ name: `system:node:${NODE}`, groups: ["system:nodes"] }],
    });
    try {
      const node = await startKubeletNode({
        nodeName: NODE,
        kubeconfigPath: cluster.userKubeconfigs[`system:node:${NODE}`],
      });
      try {
        const admin = cluster.kubeconfig;
        const greeting = `hello-${crypto.randomUUID()}`;
        const pod = {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: "join-probe", namespace: "default" },
          spec: {
            terminationGracePeriodSeconds: 1,
            containers: [{
              name: "probe",
              image: E2E_IMAGES.driver,
              imagePullPolicy: "Never",
              command: ["/bin/sh", "-c", `echo ${greeting}; exec sleep 3600`],
            }],
          },
        };
        await kubectl(admin, ["apply", "-f", "-"], JSON.stringify(pod));
        await kubectl(admin, ["wait", "--for=condition=Ready", "pod/join-probe", "--timeout=120s"]);
        const status = JSON.parse(await kubectl(admin, ["get", "pod/join-probe", "-o", "json"]));
        assert.equal(status.spec.nodeName, NODE);
        assert.equal(status.status.phase, "Running");
        assert.ok(status.status.podIP.startsWith("10.244.7."), status.status.podIP);
        const logDir = join(node.podLogsDir, `default_join-probe_${status.metadata.uid}`, "probe");
        const log = await Deno.readTextFile(join(logDir, "0.log"));
        assert.ok(log.includes(` stdout F ${greeting}\n`), log);
        await kubectl(admin, ["delete", "pod/join-probe", "--wait=true", "--timeout=60s"]);
      } finally {
        await node.stop();
      }
      assert.deepEqual(await shimsOf(node.containerdAddress), [], "containerd shims left");
    } finally {
      await cluster.stop();
    }
  },
});
