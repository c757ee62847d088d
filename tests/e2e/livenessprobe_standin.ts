/**
 * A STAND-IN for kubernetes-csi/livenessprobe, for the end-to-end tier only: the Go
 * module proxy serves no version of it, and without it the driver containers'
 * livenessProbe (`httpGet /healthz` on port 9808) has nothing to ask. It does what
 * the real one (cmd/livenessprobe/main.go) does, with the same flags:
 *
 * 1. at start, waits up to five minutes for `--csi-address` (a path or `unix://`)
 *    to accept a connection and asks it for the driver's name
 *    (Identity.GetPluginInfo); exits 1 when either fails;
 * 2. serves `GET /healthz` on `0.0.0.0:<--health-port>` (default 9808) or on
 *    `--http-endpoint` (`host:port`; setting both is an error). Each request
 *    connects to the socket and calls Identity.Probe, both within
 *    `--probe-timeout` (a Go duration, default 1s): 200 `ok` when it answers with
 *    `ready` true or absent (the CSI spec: absent means ready); 500 with the error,
 *    or `driver responded but is not ready`, otherwise.
 *
 * Not reproduced: the metrics endpoint (`--metrics-address`, `--metrics-path`) and
 * klog's flags.
 *
 * @module
 */

import * as grpc from "@grpc/grpc-js";
import { parseArgs } from "node:util";
import { csiServices } from "../../csi/proto.ts";

const DEFAULT_HEALTH_PORT = "9808";
/** Upstream's start-up connection timeout: the longest backoff of a crashing driver. */
const CONNECT_AT_START_MS = 5 * 60_000;

function log(message: string): void {
  console.log(`${new Date().toISOString()} livenessprobe-standin: ${message}`);
}

const DURATION_UNITS_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3,
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
};

/** A Go `time.Duration` flag (`1s`, `500ms`, `1m30s`) in milliseconds. */
function parseGoDuration(text: string): number {
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)];
  if (text === "0") return 0;
  if (parts.length === 0 || parts.map((p) => p[0]).join("") !== text) {
    throw new Error(`invalid duration ${JSON.stringify(text)}`);
  }
  return parts.reduce((ms, [, n, unit]) => ms + Number(n) * DURATION_UNITS_MS[unit], 0);
}

type Unary<Res> = (
  request: Record<string, never>,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, res?: Res) => void,
) => void;

interface ProbeAnswer {
  ready: { value: boolean } | null;
}

/** An Identity client on the socket; the caller closes it. */
function identityClient(socketPath: string): grpc.Client {
  const Identity = grpc.makeGenericClientConstructor(csiServices().Identity, "Identity");
  return new Identity(`unix://${socketPath}`, grpc.credentials.createInsecure());
}

function waitForReady(client: grpc.Client, deadline: number): Promise<void> {
  return new Promise((resolve, reject) => {
    client.waitForReady(deadline, (err) => {
      if (err) reject(new Error(`cannot connect to the CSI driver: ${err.message}`));
      else resolve();
    });
  });
}

function call<Res>(client: grpc.Client, method: string, deadline: number): Promise<Res> {
  const fn = (client as unknown as Record<string, Unary<Res>>)[method];
  return new Promise((resolve, reject) => {
    fn.call(client, {}, { deadline }, (err, res) => {
      if (err) reject(err);
      else resolve(res as Res);
    });
  });
}

/** The driver's name, as upstream learns it once at start (no per-call timeout). */
async function driverName(socketPath: string): Promise<string> {
  const client = identityClient(socketPath);
  try {
    await waitForReady(client, Date.now() + CONNECT_AT_START_MS);
    const info = await call<{ name: string }>(client, "GetPluginInfo", Infinity);
    if (!info.name) throw new Error("GetPluginInfo answered an empty driver name");
    return info.name;
  } finally {
    client.close();
  }
}

/** One health check: connect and Probe, both within `timeoutMs`. */
async function checkProbe(socketPath: string, timeoutMs: number): Promise<Response> {
  const deadline = Date.now() + timeoutMs;
  const client = identityClient(socketPath);
  try {
    await waitForReady(client, deadline);
    const answer = await call<ProbeAnswer>(client, "Probe", deadline);
    if (answer.ready !== null && !answer.ready.value) {
      log("health check failed: driver responded but is not ready");
      return new Response("driver responded but is not ready", { status: 500 });
    }
    return new Response("ok", { status: 200 });
  } catch (e) {
    const message = (e as Error).message;
    log(`health check failed: ${message}`);
    return new Response(message, { status: 500 });
  } finally {
    client.close();
  }
}

/** `host:port` as Go's net.Listen reads it; an empty host listens on every address. */
function listenAddress(endpoint: string): { hostname: string; port: number } {
  const i = endpoint.lastIndexOf(":");
  const port = Number(endpoint.slice(i + 1));
  if (i < 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`invalid address ${JSON.stringify(endpoint)}: want host:port`);
  }
  const host = endpoint.slice(0, i).replace(/^\[(.*)\]$/, "$1");
  return { hostname: host || "0.0.0.0", port };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      "csi-address": { type: "string", default: "/run/csi/socket" },
      "health-port": { type: "string", default: DEFAULT_HEALTH_PORT },
      "http-endpoint": { type: "string", default: "" },
      "probe-timeout": { type: "string", default: "1s" },
    },
  });
  const socketPath = values["csi-address"].replace(/^unix:\/\//, "");
  const timeoutMs = parseGoDuration(values["probe-timeout"]);
  const endpoint = values["http-endpoint"];
  if (endpoint && values["health-port"] !== DEFAULT_HEALTH_PORT) {
    throw new Error("only one of --health-port and --http-endpoint can be explicitly set");
  }
  const address = listenAddress(endpoint || `:${values["health-port"]}`);

  log(`calling the CSI driver at ${socketPath} to discover its name`);
  const name = await driverName(socketPath);
  log(`CSI driver name: ${name}`);

  const server = Deno.serve({
    ...address,
    onListen: ({ hostname, port }) => log(`serving /healthz on ${hostname}:${port}`),
  }, (request) => {
    if (new URL(request.url).pathname !== "/healthz") {
      return new Response("404 page not found\n", { status: 404 });
    }
    return checkProbe(socketPath, timeoutMs);
  });
  const stop = async () => {
    await server.shutdown();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
}

if (import.meta.main) {
  main().catch((e) => {
    console.error(`livenessprobe-standin: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  });
}
