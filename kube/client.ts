/**
 * The Kubernetes API client of the node agent (pod runner, ConfigMap
 * settings): `@kubernetes/client-node` configured from the pod's
 * ServiceAccount (in-cluster) by default, or from a kubeconfig file
 * (`--kubeconfig`) for debugging and tests.
 *
 * @module
 */

import type { CoreV1Api, KubeConfig, V1Pod } from "@kubernetes/client-node";
import type { Agent as UndiciAgent, Dispatcher } from "undici";

/** The `@kubernetes/client-node` module. */
export type KubeSdk = typeof import("@kubernetes/client-node");

let loading: Promise<KubeSdk> | undefined;

/**
 * Import client-node on first use: it costs ~85 MiB of RSS, which a node
 * agent with the process runner should never pay.
 */
export function loadKubeSdk(): Promise<KubeSdk> {
  exposeWebStreamStateToNodeStream();
  return loading ??= import("@kubernetes/client-node");
}

/**
 * Give web ReadableStreams the state getters Node's own have, which
 * `node:stream`'s isReadable/isErrored/isDisturbed read.
 *
 * Why: client-node fetches with undici, which errors a response body (when
 * the connection drops mid-body, or the fetch is aborted) only if
 * `isReadable(body)`. On Deno (2.9.6) that answers null for every web stream,
 * so the body never ends: a watch whose API server went away — every API
 * server restart — hangs forever, its done callback never called, even its
 * inactivity timeout lost. Deno exposes the stream's state under Node's
 * `nodejs.webstreams.kState`; this mirrors Node's getters on it, and leaves
 * them alone once Deno defines them itself.
 */
function exposeWebStreamStateToNodeStream(): void {
  const proto = ReadableStream.prototype as unknown as Record<symbol, unknown>;
  const kState = Symbol.for("nodejs.webstreams.kState");
  if (!(kState in proto)) return;
  const getters: Record<string, (s: { state: string; disturbed: boolean }) => boolean> = {
    "nodejs.stream.readable": (s) => s.state === "readable",
    "nodejs.stream.errored": (s) => s.state === "errored",
    "nodejs.stream.disturbed": (s) => s.disturbed,
  };
  for (const [name, get] of Object.entries(getters)) {
    const key = Symbol.for(name);
    if (key in proto) continue;
    Object.defineProperty(proto, key, {
      configurable: true,
      get(this: Record<symbol, { state: string; disturbed: boolean }>) {
        return get(this[kState]);
      },
    });
  }
}

/** Where a client finds the API server and its credentials. */
export interface KubeClientOptions {
  /** Path of a kubeconfig file; absent → the in-cluster ServiceAccount. */
  kubeconfig?: string;
}

/** A configured client: the config (for watches) and the core/v1 API. */
export interface KubeClient {
  config: KubeConfig;
  core: CoreV1Api;
  sdk: KubeSdk;
}

/** The in-cluster environment variables the ServiceAccount config needs. */
const IN_CLUSTER_ENV = ["KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"] as const;

/**
 * Configure a client. Throws when neither a kubeconfig is given nor the
 * process runs in a pod (the in-cluster variables are unset).
 *
 * @example
 * ```ts
 * const kube = await createKubeClient({ kubeconfig: "/root/.kube/config" });
 * await kube.core.readNamespacedConfigMap({ name: "zerofs-default", namespace: "zerofs" });
 * ```
 */
export async function createKubeClient(opts: KubeClientOptions = {}): Promise<KubeClient> {
  const sdk = await loadKubeSdk();
  const config = new sdk.KubeConfig();
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
  speakHttp1(config, (await import("undici")).Agent);
  return { config, core: config.makeApiClient(sdk.CoreV1Api), sdk };
}

/**
 * Make every request of `config` (API calls and watches) use HTTP/1.1.
 *
 * Why: client-node fetches through undici, whose Agent offers ALPN h2; the
 * API server picks it, and undici's HTTP/2 runs on Deno's node:http2, which
 * kills the whole process (SIGSEGV, or an nghttp2 assertion) when the API
 * server goes away under open sessions, as it does in every upgrade. HTTP/1.1
 * uses only node:tls and undici's own parser.
 *
 * client-node builds a dispatcher per request in the private
 * `createDispatcher`; this replaces it on the instance, from the public
 * `createDispatcherOptions`, with an HTTP/1.1-only Agent. Proxy settings
 * (never in-cluster) are refused rather than silently sent over HTTP/2.
 */
function speakHttp1(config: KubeConfig, Agent: typeof UndiciAgent): void {
  const target = config as unknown as {
    createDispatcher?: (...args: Parameters<KubeConfig["createDispatcherOptions"]>) => unknown;
  };
  if (typeof target.createDispatcher !== "function") {
    throw new Error("@kubernetes/client-node has no createDispatcher: recheck speakHttp1");
  }
  target.createDispatcher = (cluster, agentOptions): Dispatcher => {
    const opts = config.createDispatcherOptions(cluster, agentOptions);
    switch (opts.type) {
      case "agent":
        return new Agent({ connect: opts.connect, allowH2: false });
      case "none":
        return new Agent({ allowH2: false });
      default:
        throw new Error(
          `Cannot reach the Kubernetes API through a ${opts.type} proxy: not supported`,
        );
    }
  };
}

/** The HTTP status of a failed API call, or undefined for other errors. */
export function apiStatusCode(e: unknown): number | undefined {
  return isApiException(e) ? e.code : undefined;
}

/** client-node's ApiException, recognised by shape (the module loads lazily). */
function isApiException(e: unknown): e is Error & { code: number; body: unknown } {
  return e instanceof Error && typeof (e as { code?: unknown }).code === "number" &&
    "body" in e && "headers" in e;
}

/** A failed API call as one line: the server's Status message when it sent one. */
export function apiErrorMessage(e: unknown): string {
  if (isApiException(e)) {
    try {
      const status = typeof e.body === "string" ? JSON.parse(e.body) : e.body;
      if (status?.message) return `HTTP ${e.code}: ${status.message}`;
    } catch { /* not JSON */ }
    return `HTTP ${e.code}`;
  }
  return e instanceof Error ? e.message : String(e);
}

const WATCH_SECONDS = 300;
const REWATCH_DELAY_MS = 500;

/**
 * One pod followed by name: listed once (state + resourceVersion), then
 * watched from that resourceVersion, re-listed whenever the watch ends.
 * {@linkcode PodWatch.waitFor} answers from the latest state, bounded.
 *
 * @example
 * ```ts
 * await using watch = await PodWatch.open(kube, "zerofs", "zerofs-0123");
 * const gone = await watch.waitFor((pod) => pod === undefined, 30_000);
 * ```
 */
export class PodWatch implements AsyncDisposable {
  #pod: V1Pod | undefined;
  #waiters = new Set<() => void>();
  #abort: AbortController | undefined;
  #closed = false;
  #timer: ReturnType<typeof setTimeout> | undefined;

  private constructor(
    private readonly kube: KubeClient,
    private readonly namespace: string,
    private readonly name: string,
  ) {}

  /** List the pod, start watching it. Throws when the list fails. */
  static async open(kube: KubeClient, namespace: string, name: string): Promise<PodWatch> {
    const watch = new PodWatch(kube, namespace, name);
    const rv = await watch.#list();
    await watch.#watch(rv);
    return watch;
  }

  /** The pod as last seen; undefined when it does not exist. */
  get pod(): V1Pod | undefined {
    return this.#pod;
  }

  /** True once `done(pod)` holds, false after `timeoutMs` without it. */
  waitFor(done: (pod: V1Pod | undefined) => boolean, timeoutMs: number): Promise<boolean> {
    if (done(this.#pod)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const finish = (result: boolean) => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve(result);
      };
      const check = () => {
        if (done(this.#pod)) finish(true);
      };
      const timer = setTimeout(() => finish(false), Math.max(0, timeoutMs));
      this.#waiters.add(check);
    });
  }

  /** Stop watching. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#abort?.abort();
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }

  #set(pod: V1Pod | undefined): void {
    this.#pod = pod;
    for (const check of [...this.#waiters]) check();
  }

  async #list(): Promise<string> {
    const list = await this.kube.core.listNamespacedPod({
      namespace: this.namespace,
      fieldSelector: `metadata.name=${this.name}`,
    }).catch((e) => {
      throw new Error(
        `Cannot list pod ${this.namespace}/${this.name}: ${apiErrorMessage(e)}`,
      );
    });
    this.#set(list.items[0]);
    return list.metadata?.resourceVersion ?? "";
  }

  async #watch(resourceVersion: string): Promise<void> {
    const abort = await new this.kube.sdk.Watch(this.kube.config).watch(
      `/api/v1/namespaces/${this.namespace}/pods`,
      {
        fieldSelector: `metadata.name=${this.name}`,
        resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds: WATCH_SECONDS,
      },
      (type: string, obj: V1Pod) => {
        if (type === "ADDED" || type === "MODIFIED") this.#set(obj);
        else if (type === "DELETED") this.#set(undefined);
        else if (type === "ERROR") this.#abort?.abort(); // e.g. 410 Gone: re-list below
      },
      () => this.#rewatch(),
    );
    this.#abort = abort;
    if (this.#closed) abort.abort();
  }

  /** The watch ended (timeout, error, server gone): re-list, watch again, until closed. */
  #rewatch(): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(async () => {
      if (this.#closed) return;
      try {
        await this.#watch(await this.#list());
      } catch {
        this.#rewatch();
      }
    }, REWATCH_DELAY_MS);
  }
}
