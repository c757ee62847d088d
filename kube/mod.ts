/**
 * The driver's Kubernetes API client: client-node over HTTP/1.1 with the
 * driver's timeouts, the error helpers every caller shares, and a pod watch
 * that re-lists after a dropped connection. Used by the node agent's pod
 * runner, its settings and Events, the controller's settings and `doctor`.
 *
 * Other folders import only from here.
 *
 * @module
 */

export {
  apiErrorMessage,
  apiStatusCode,
  createKubeClient,
  type KubeClient,
  type KubeClientOptions,
  PodWatch,
} from "./client.ts";
