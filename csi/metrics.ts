/**
 * Prometheus metrics of the driver: the CSI operation latency histogram that
 * the kubernetes-csi sidecars also export (same name, labels, buckets and
 * status-code spelling, so existing dashboards work) and the node's gauges,
 * served as text exposition format 0.0.4.
 *
 * Rendering uses `prom-client`, which runs under Deno without any permission.
 *
 * @example
 * ```ts
 * const metrics = new DriverMetrics();
 * metrics.observeRpc({ method: csiMethodPath("NodeStageVolume"), grpcCode: 0, seconds: 0.42 });
 * metrics.onCollect(async () => metrics.setNodeGauges(await readNodeState()));
 * const server = await startMetricsServer(":9808", metrics);
 * ```
 *
 * @module
 */

import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { DRIVER_NAME } from "./version.ts";

/**
 * Bucket bounds of `csi_plugin_operations_seconds`, as in kubernetes-csi
 * csi-lib-utils `metrics/metrics.go` (operationsLatencyBuckets).
 */
export const OPERATION_SECONDS_BUCKETS: readonly number[] = [
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  15,
  25,
  50,
  120,
  300,
  600,
];

/**
 * Go's `codes.Code.String()` names, indexed by code number: csi-lib-utils
 * labels `grpc_status_code` with these ("OK", "Aborted", "FailedPrecondition"),
 * not with the proto's upper-case names.
 */
const GO_GRPC_CODE_NAMES: readonly string[] = [
  "OK",
  "Canceled",
  "Unknown",
  "InvalidArgument",
  "DeadlineExceeded",
  "NotFound",
  "AlreadyExists",
  "PermissionDenied",
  "ResourceExhausted",
  "FailedPrecondition",
  "Aborted",
  "OutOfRange",
  "Unimplemented",
  "Internal",
  "Unavailable",
  "DataLoss",
  "Unauthenticated",
];

/** csi-lib-utils' label for a failure that carried no gRPC status. */
export const NON_GRPC_CODE_LABEL = "unknown-non-grpc";

/**
 * The `grpc_status_code` label of a call's outcome, spelled like csi-lib-utils:
 * `0` → `"OK"`, `10` → `"Aborted"`, `null` (not a gRPC error) → `"unknown-non-grpc"`.
 */
export function grpcCodeLabel(code: number | null): string {
  if (code === null) return NON_GRPC_CODE_LABEL;
  return GO_GRPC_CODE_NAMES[code] ?? `Code(${code})`;
}

const IDENTITY_RPCS: ReadonlySet<string> = new Set([
  "GetPluginInfo",
  "GetPluginCapabilities",
  "Probe",
]);

/**
 * The full gRPC method path the sidecars put in `method_name`, from an RPC
 * name: `"NodeStageVolume"` → `"/csi.v1.Node/NodeStageVolume"`. A path that
 * already starts with `/` is returned unchanged.
 */
export function csiMethodPath(rpc: string): string {
  if (rpc.startsWith("/")) return rpc;
  const service = IDENTITY_RPCS.has(rpc)
    ? "Identity"
    : rpc.startsWith("Node")
    ? "Node"
    : "Controller";
  return `/csi.v1.${service}/${rpc}`;
}

/** One finished RPC. */
export interface RpcObservation {
  /** Full gRPC method path, e.g. `/csi.v1.Node/NodeStageVolume` (see {@linkcode csiMethodPath}). */
  method: string;
  /** gRPC status code number (0 = OK); `null` when the failure was not a gRPC status. */
  grpcCode: number | null;
  /** Wall time of the call. */
  seconds: number;
}

/** The node's state as the gauges show it; every field is required so none is invented. */
export interface NodeGauges {
  volumesStaged: number;
  /** Devices (nbd, or loop in userspace mode) attached to volumes. */
  nbdDevicesInUse: number;
  /** Devices free for new attachments. */
  nbdDevicesAvailable: number;
  zerofsInstancesReady: number;
  zerofsInstancesNotReady: number;
  /** Staged volumes whose device, mount or ZeroFS instance is not as recorded. */
  volumesAbnormal: number;
}

/** Reads the node's state at scrape time; usually calls {@linkcode DriverMetrics.setNodeGauges}. */
export type Collector = () => void | Promise<void>;

/** Options of {@linkcode DriverMetrics}. */
export interface DriverMetricsOptions {
  /** `driver_name` label; default {@linkcode DRIVER_NAME}. */
  driverName?: string;
  /** Told about a collector that failed (the scrape still answers, without the node gauges). */
  onCollectError?: (error: unknown) => void;
}

/** Content type of the text exposition format. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/**
 * The driver's metrics registry. Node gauges appear only once the node has
 * reported them, and are left out of a scrape whose collector failed: a stale
 * or zero value would look like a real reading.
 */
export class DriverMetrics {
  readonly #driverName: string;
  readonly #onCollectError?: (error: unknown) => void;
  readonly #registry = new Registry();
  readonly #nodeRegistry = new Registry();
  readonly #collectors: Collector[] = [];
  #nodeGaugesSet = false;

  readonly #operations: Histogram<"driver_name" | "method_name" | "grpc_status_code">;
  readonly #collectErrors: Counter;
  readonly #volumesStaged: Gauge;
  readonly #devicesInUse: Gauge;
  readonly #devicesAvailable: Gauge;
  readonly #zerofsInstances: Gauge<"state">;
  readonly #volumesAbnormal: Gauge;
  readonly #orphans: Gauge<"kind">;

  constructor(opts: DriverMetricsOptions = {}) {
    this.#driverName = opts.driverName ?? DRIVER_NAME;
    this.#onCollectError = opts.onCollectError;
    this.#operations = new Histogram({
      name: "csi_plugin_operations_seconds",
      // Same help text as csi-lib-utils (k8s component-base prefixes the stability level).
      help:
        "[ALPHA] Container Storage Interface operation duration with gRPC error code status total",
      labelNames: ["driver_name", "method_name", "grpc_status_code"],
      buckets: [...OPERATION_SECONDS_BUCKETS],
      registers: [this.#registry],
    });
    this.#collectErrors = new Counter({
      name: "zerofs_csi_metrics_collect_errors_total",
      help: "Scrapes whose node state could not be read (the node gauges were left out).",
      registers: [this.#registry],
    });
    const nodeGauge = (name: string, help: string) =>
      new Gauge({ name, help, registers: [this.#nodeRegistry] });
    this.#volumesStaged = nodeGauge("zerofs_csi_volumes_staged", "Volumes staged on this node.");
    this.#devicesInUse = nodeGauge(
      "zerofs_csi_nbd_devices_in_use",
      "Block devices (nbd, or loop in userspace mode) attached to volumes on this node.",
    );
    this.#devicesAvailable = nodeGauge(
      "zerofs_csi_nbd_devices_available",
      "Block devices free for new volume attachments on this node.",
    );
    this.#zerofsInstances = new Gauge({
      name: "zerofs_csi_zerofs_instances",
      help: "ZeroFS instances of this node's volumes, by readiness (ready, not_ready).",
      labelNames: ["state"],
      registers: [this.#nodeRegistry],
    });
    this.#volumesAbnormal = nodeGauge(
      "zerofs_csi_volumes_abnormal",
      "Staged volumes whose device, mount or ZeroFS instance is not as recorded.",
    );
    this.#orphans = new Gauge({
      name: "zerofs_csi_orphans",
      help: "Devices, mounts and ZeroFS processes under the state dir that no volume record " +
        "owns, by kind (nbd, loop, fuse, mount, zerofs); reported, never removed.",
      labelNames: ["kind"],
      registers: [this.#nodeRegistry],
    });
  }

  /** Record one finished RPC in `csi_plugin_operations_seconds`. */
  observeRpc(o: RpcObservation): void {
    this.#operations.observe(
      {
        driver_name: this.#driverName,
        method_name: o.method,
        grpc_status_code: grpcCodeLabel(o.grpcCode),
      },
      o.seconds,
    );
  }

  /** Set every node gauge at once. */
  setNodeGauges(g: NodeGauges): void {
    for (const [key, value] of Object.entries(g)) {
      if (!Number.isFinite(value) || value < 0) {
        throw new RangeError(`Cannot set node gauge ${key} to ${value}: expected a count >= 0.`);
      }
    }
    this.#volumesStaged.set(g.volumesStaged);
    this.#devicesInUse.set(g.nbdDevicesInUse);
    this.#devicesAvailable.set(g.nbdDevicesAvailable);
    this.#zerofsInstances.set({ state: "ready" }, g.zerofsInstancesReady);
    this.#zerofsInstances.set({ state: "not_ready" }, g.zerofsInstancesNotReady);
    this.#volumesAbnormal.set(g.volumesAbnormal);
    this.#nodeGaugesSet = true;
  }

  /** Set `zerofs_csi_orphans{kind}` for every kind in `counts` (scraped with the node gauges). */
  setOrphans(counts: Record<string, number>): void {
    for (const [kind, value] of Object.entries(counts)) {
      if (!Number.isInteger(value) || value < 0) {
        throw new RangeError(
          `Cannot set orphans{kind="${kind}"} to ${value}: expected a count >= 0.`,
        );
      }
      this.#orphans.set({ kind }, value);
    }
  }

  /** Run `collector` before each scrape (in registration order). */
  onCollect(collector: Collector): void {
    this.#collectors.push(collector);
  }

  /** Run the collectors, then render every metric in text exposition format. */
  async render(): Promise<string> {
    let collectFailed = false;
    for (const collector of this.#collectors) {
      try {
        await collector();
      } catch (e) {
        collectFailed = true;
        this.#collectErrors.inc();
        this.#onCollectError?.(e);
      }
    }
    const parts = [await this.#registry.metrics()];
    if (this.#nodeGaugesSet && !collectFailed) parts.push(await this.#nodeRegistry.metrics());
    return parts.map((p) => p.endsWith("\n") ? p : p + "\n").join("\n");
  }
}

/** A running metrics endpoint. */
export interface MetricsServer {
  /** The bound port (useful with port 0). */
  port: number;
  close(): Promise<void>;
}

/**
 * Parse `"127.0.0.1:9808"`, `"[::1]:9808"` or `":9808"` (all IPv4 interfaces,
 * like Go's `ListenAndServe(":9808")` on an IPv4 node).
 */
export function parseListenAddress(address: string): { hostname: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(address);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) {
    throw new RangeError(
      `Cannot listen on metrics address "${address}": expected host:port, [ipv6]:port or :port ` +
        `(e.g. ":9808").`,
    );
  }
  return { hostname: match[1] ?? (match[2] || "0.0.0.0"), port };
}

/**
 * Serve `GET /metrics` (text exposition 0.0.4); every other path answers 404.
 * A render failure answers 500 with the reason.
 */
export function startMetricsServer(
  address: string,
  metrics: Pick<DriverMetrics, "render">,
): Promise<MetricsServer> {
  const { hostname, port } = parseListenAddress(address);
  return new Promise((resolve, reject) => {
    let server: Deno.HttpServer<Deno.NetAddr>;
    try {
      server = Deno.serve({
        hostname,
        port,
        onListen: (addr) => resolve({ port: addr.port, close: () => server.shutdown() }),
      }, async (req) => {
        const path = new URL(req.url).pathname;
        if (path !== "/metrics") return new Response("not found\n", { status: 404 });
        if (req.method !== "GET" && req.method !== "HEAD") {
          return new Response("method not allowed\n", { status: 405, headers: { allow: "GET" } });
        }
        try {
          const body = await metrics.render();
          return new Response(req.method === "HEAD" ? null : body, {
            headers: { "content-type": METRICS_CONTENT_TYPE },
          });
        } catch (e) {
          const reason = e instanceof Error ? e.message : String(e);
          return new Response(`cannot render metrics: ${reason}\n`, { status: 500 });
        }
      });
    } catch (e) {
      const reason = e instanceof Error ? e.message : String(e);
      reject(new Error(`Cannot serve metrics on ${address}: ${reason}. Choose a free address.`));
    }
  });
}
