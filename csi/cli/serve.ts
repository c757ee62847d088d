/**
 * Serve a CSI server until SIGTERM/SIGINT, with the optional metrics endpoint.
 *
 * @module
 */

import type { Logger } from "../log.ts";
import { csiMethodPath, DriverMetrics, startMetricsServer } from "../metrics.ts";
import type { PipelineContext } from "../pipeline.ts";
import type { CsiServer } from "../server.ts";
import { DRIVER_NAME, DRIVER_VERSION } from "../version.ts";

/** Metrics for a server when `--metrics-address` is given; wires the pipeline's observer. */
export async function metricsFor(
  address: string | undefined,
  pipeline: PipelineContext,
  log: Logger,
): Promise<{ metrics: DriverMetrics; close(): Promise<void> } | undefined> {
  if (!address) return undefined;
  const metrics = new DriverMetrics({
    onCollectError: (e) =>
      log.log("warn", "metrics collection failed", { error: (e as Error).message }),
  });
  pipeline.observe = ({ method, code, seconds }) =>
    metrics.observeRpc({ method: csiMethodPath(method), grpcCode: code, seconds });
  const server = await startMetricsServer(address, metrics);
  log.log("info", "metrics endpoint serving", { address, port: server.port });
  return { metrics, close: () => server.close() };
}

/** Block until a termination signal, then stop the server gracefully. */
export async function serveUntilSignal(
  server: CsiServer,
  log: Logger,
  o: { mode: string; onStop?: () => Promise<void> },
): Promise<number> {
  log.log("info", "serving", {
    mode: o.mode,
    driver: DRIVER_NAME,
    version: DRIVER_VERSION,
    endpoint: server.socketPath,
  });
  const signal = await new Promise<Deno.Signal>((resolve) => {
    for (const s of ["SIGTERM", "SIGINT"] as const) Deno.addSignalListener(s, () => resolve(s));
  });
  log.log("info", "shutting down", { signal });
  await server.stop();
  await o.onStop?.();
  log.log("info", "stopped", {});
  return 0;
}
