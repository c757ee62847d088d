/**
 * The Kubernetes API client of the node agent (pod runner, ConfigMap
 * settings): `@kubernetes/client-node` configured from the pod's
 * ServiceAccount (in-cluster) by default, or from a kubeconfig file
 * (`--kubeconfig`) for debugging and tests.
 *
 * @module
 */

import { ApiException, CoreV1Api, KubeConfig } from "@kubernetes/client-node";

/** Where a client finds the API server and its credentials. */
export interface KubeClientOptions {
  /** Path of a kubeconfig file; absent → the in-cluster ServiceAccount. */
  kubeconfig?: string;
}

/** A configured client: the config (for watches) and the core/v1 API. */
export interface KubeClient {
  config: KubeConfig;
  core: CoreV1Api;
}

/** The in-cluster environment variables the ServiceAccount config needs. */
const IN_CLUSTER_ENV = ["KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"] as const;

/**
 * Configure a client. Throws when neither a kubeconfig is given nor the
 * process runs in a pod (the in-cluster variables are unset).
 *
 * @example
 * ```ts
 * const kube = createKubeClient({ kubeconfig: "/root/.kube/config" });
 * await kube.core.readNamespacedConfigMap({ name: "zerofs-default", namespace: "zerofs" });
 * ```
 */
export function createKubeClient(opts: KubeClientOptions = {}): KubeClient {
  const config = new KubeConfig();
  if (opts.kubeconfig) {
    try {
      config.loadFromFile(opts.kubeconfig);
    } catch (e) {
      throw new Error(
        `Cannot load --kubeconfig ${opts.kubeconfig}: ${e instanceof Error ? e.message : e}`,
      );
    }
  } else {
    const missing = IN_CLUSTER_ENV.filter((name) => !Deno.env.get(name));
    if (missing.length > 0) {
      throw new Error(
        `Cannot reach the Kubernetes API: not running in a pod (${missing.join(", ")} unset); ` +
          `pass --kubeconfig FILE`,
      );
    }
    config.loadFromCluster();
  }
  return { config, core: config.makeApiClient(CoreV1Api) };
}

/** The HTTP status of a failed API call, or undefined for other errors. */
export function apiStatusCode(e: unknown): number | undefined {
  return e instanceof ApiException ? e.code : undefined;
}

/** A failed API call as one line: the server's Status message when it sent one. */
export function apiErrorMessage(e: unknown): string {
  if (e instanceof ApiException) {
    try {
      const status = typeof e.body === "string" ? JSON.parse(e.body) : e.body;
      if (status?.message) return `HTTP ${e.code}: ${status.message}`;
    } catch { /* not JSON */ }
    return `HTTP ${e.code}`;
  }
  return e instanceof Error ? e.message : String(e);
}
