/**
 * The test cluster's Service network (tests/fixtures/cluster_network.ts): on the real
 * kubelet node with kube-proxy and CoreDNS, a pod reaches the API server through the
 * `kubernetes` Service the kubelet names in `KUBERNETES_SERVICE_HOST` (TLS verified
 * against the ServiceAccount's CA), and another pod by its Service's DNS name, as in
 * any cluster. After stop, no `KUBE-*` chain is left on the host.
 *
 * Skipped, loudly, when a binary is missing (`.ci/install` builds them).
 */

import assert from "node:assert/strict";
import { runTool } from "../../blockdev/mod.ts";
import { findClusterNetworkBinaries, kubeChainsLeft } from "../fixtures/cluster_network.ts";
import { findKubeBinaries, KUBERNETES_SERVICE_IP } from "../fixtures/kube_cluster.ts";
import { findKubelet } from "../fixtures/kubelet_node.ts";
import { startNetworkedCluster } from "../fixtures/networked_cluster.ts";
import { E2E_IMAGES } from "./images/mod.ts";

const NODE = "zerofs-e2e-node";
const SERVER_PORT = 8080;

function missingBinaries(): string | undefined {
  try {
    findKubeBinaries();
    findKubelet();
    findClusterNetworkBinaries();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

const missing = missingBinaries();
if (missing) console.warn(`SKIPPING the cluster network test: ${missing}`);

/** `kubectl` as the cluster admin; stdout. */
async function kubectl(kubeconfig: string, args: string[], stdin?: string): Promise<string> {
  const { stdout } = await runTool("kubectl", ["--kubeconfig", kubeconfig, ...args], {
    timeoutMs: 150_000,
    stdin: stdin === undefined ? undefined : new TextEncoder().encode(stdin),
  });
  return stdout;
}

/** A pod of the driver image running `deno eval` of `code`. */
function denoPod(name: string, code: string, labels: Record<string, string> = {}) {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: "default", labels },
    spec: {
      restartPolicy: "Never",
      terminationGracePeriodSeconds: 1,
      containers: [{
        name: "main",
        image: E2E_IMAGES.driver,
        imagePullPolicy: "Never",
        command: ["/usr/local/bin/deno", "eval", code],
      }],
    },
  };
}

/** Serves a fixed greeting on SERVER_PORT. */
const SERVER_CODE = `Deno.serve({ port: ${SERVER_PORT}, hostname: "0.0.0.0" }, () => ` +
  `new Response("greetings from the server pod"));`;

/**
 * Prints the API server's /version through the `kubernetes` Service (the ServiceAccount's
 * token and CA, as a client in a pod uses them), then the server pod's answer by DNS name.
 */
const CLIENT_CODE = `
const sa = "/var/run/secrets/kubernetes.io/serviceaccount";
const env = Deno.env.toObject();
const client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(sa + "/ca.crt")] });
const api = await fetch(
  "https://" + env.KUBERNETES_SERVICE_HOST + ":" + env.KUBERNETES_SERVICE_PORT + "/version",
  { client, headers: { authorization: "Bearer " + (await Deno.readTextFile(sa + "/token")) } },
);
console.log("service host " + env.KUBERNETES_SERVICE_HOST + ":" + env.KUBERNETES_SERVICE_PORT);
console.log("api " + api.status + " " + (await api.json()).gitVersion);
// A Service's new endpoint reaches kube-proxy's rules a moment after the pod is Ready
// (EndpointSlice controller, then a sync): until then the ClusterIP refuses.
for (let attempt = 1; ; attempt++) {
  try {
    const hello = await fetch("http://greeter.default.svc.cluster.local:${SERVER_PORT}/");
    console.log("greeter " + hello.status + " " + (await hello.text()));
    break;
  } catch (e) {
    if (attempt === 60) throw e;
    await new Promise((r) => setTimeout(r, 500));
  }
}
`;

Deno.test({
  name: "pods reach the API through the kubernetes Service and each other by Service name",
  ignore: missing !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { cluster, network, stop } = await startNetworkedCluster({ nodeName: NODE });
    try {
      const admin = cluster.kubeconfig;
      const service = {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: "greeter", namespace: "default" },
        spec: { selector: { app: "greeter" }, ports: [{ port: SERVER_PORT }] },
      };
      for (const obj of [service, denoPod("greeter", SERVER_CODE, { app: "greeter" })]) {
        await kubectl(admin, ["apply", "-f", "-"], JSON.stringify(obj));
      }
      await kubectl(admin, ["wait", "--for=condition=Ready", "pod/greeter", "--timeout=120s"]);
      await kubectl(admin, ["apply", "-f", "-"], JSON.stringify(denoPod("client", CLIENT_CODE)));
      await kubectl(admin, [
        "wait",
        "--for=jsonpath={.status.phase}=Succeeded",
        "pod/client",
        "--timeout=120s",
      ]).catch(async (e) => {
        throw new Error(
          `${(e as Error).message}\n--- client log:\n` +
            await kubectl(admin, ["logs", "client"]).catch(() => "") +
            `\n${await network.logTail()}`,
        );
      });
      const out = await kubectl(admin, ["logs", "client"]);
      assert.match(out, new RegExp(`^service host ${KUBERNETES_SERVICE_IP}:443$`, "m"));
      assert.match(out, /^api 200 v1\.32\.2$/m);
      assert.match(out, /^greeter 200 greetings from the server pod$/m);
    } finally {
      await stop();
    }
    assert.deepEqual(await kubeChainsLeft(), [], "kube-proxy chains left after stop");
  },
});
