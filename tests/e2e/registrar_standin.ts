/**
 * A STAND-IN for node-driver-registrar, for the end-to-end tier only: the Go module
 * proxy serves no version of kubernetes-csi/node-driver-registrar, and without a
 * registrar the kubelet never learns the CSI driver. It does what the real one does
 * on its main path, with the same flags:
 *
 * 1. asks the CSI driver at `--csi-address` for its name (Identity.GetPluginInfo),
 *    retrying until the socket answers;
 * 2. serves the kubelet plugin registration API v1 (`pluginregistration.Registration`,
 *    k8s.io/kubelet/pkg/apis/pluginregistration/v1/api.proto) on
 *    `<--plugin-registration-path>/<driver>-reg.sock`, which the kubelet's plugin
 *    watcher finds: GetInfo answers `CSIPlugin`, the driver name, the
 *    `--kubelet-registration-path` endpoint and CSI `1.0.0`;
 * 3. logs NotifyRegistrationStatus and exits non-zero when the kubelet says the
 *    plugin was not registered (the real registrar exits too, so the pod restarts);
 * 4. `--mode=kubelet-registration-probe` (an exec livenessProbe older manifests run
 *    as `/csi-node-driver-registrar`; ours no longer do) does what it does since
 *    v2.9.0 (the manifests pin v2.15.0): exits 1 without `--kubelet-registration-path`, else exits 0 at
 *    once, touching no file and no socket. The mode is deprecated upstream
 *    (node-driver-registrar#309, #316): the registration file it used to check was
 *    written on GetInfo beside the kubelet endpoint, which a read-only root
 *    filesystem refused.
 *
 * Not reproduced: the health server (`--http-endpoint`, `--health-port`), `--timeout`
 * (the driver's name is retried until it answers, not given up after one second),
 * klog's flags, and re-registration when the socket file is deleted.
 *
 * @module
 */

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { parseArgs } from "node:util";
import { csiServices, PROTO_LOADER_OPTIONS } from "../../csi/proto.ts";

const RETRY_INTERVAL_MS = 1_000;
const CALL_TIMEOUT_MS = 10_000;
/** The deprecated exec-probe mode, a no-op upstream since v2.9.0. */
const PROBE_MODE = "kubelet-registration-probe";

/** The registration API v1 as a protobufjs JSON descriptor (api.proto, verbatim fields). */
const REGISTRATION_API = {
  nested: {
    pluginregistration: {
      nested: {
        PluginInfo: {
          fields: {
            type: { type: "string", id: 1 },
            name: { type: "string", id: 2 },
            endpoint: { type: "string", id: 3 },
            supported_versions: { rule: "repeated", type: "string", id: 4 },
          },
        },
        RegistrationStatus: {
          fields: {
            plugin_registered: { type: "bool", id: 1 },
            error: { type: "string", id: 2 },
          },
        },
        RegistrationStatusResponse: { fields: {} },
        InfoRequest: { fields: {} },
        Registration: {
          methods: {
            GetInfo: { requestType: "InfoRequest", responseType: "PluginInfo" },
            NotifyRegistrationStatus: {
              requestType: "RegistrationStatus",
              responseType: "RegistrationStatusResponse",
            },
          },
        },
      },
    },
  },
};

function log(message: string): void {
  console.log(`${new Date().toISOString()} registrar-standin: ${message}`);
}

type GetPluginInfo = (
  request: Record<string, never>,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, res?: { name: string }) => void,
) => void;

/** The driver's name from Identity.GetPluginInfo, retried until the socket answers. */
async function driverName(csiAddress: string): Promise<string> {
  const Identity = grpc.makeGenericClientConstructor(csiServices().Identity, "Identity");
  for (;;) {
    const client = new Identity(`unix://${csiAddress}`, grpc.credentials.createInsecure());
    try {
      const name = await new Promise<string>((resolve, reject) => {
        const call = (client as unknown as Record<string, GetPluginInfo>).GetPluginInfo;
        call.call(client, {}, { deadline: Date.now() + CALL_TIMEOUT_MS }, (err, res) => {
          if (err) reject(err);
          else resolve(res?.name ?? "");
        });
      });
      if (name) return name;
      log("GetPluginInfo answered an empty name; retrying");
    } catch (e) {
      log(`GetPluginInfo on ${csiAddress} failed (${(e as Error).message}); retrying`);
    } finally {
      client.close();
    }
    await new Promise((r) => setTimeout(r, RETRY_INTERVAL_MS));
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      "csi-address": { type: "string", default: "/run/csi/socket" },
      "kubelet-registration-path": { type: "string" },
      "plugin-registration-path": { type: "string", default: "/registration" },
      mode: { type: "string", default: "" },
    },
  });
  const endpoint = values["kubelet-registration-path"];
  if (!endpoint) throw new Error("--kubelet-registration-path is required");
  if (values.mode === PROBE_MODE) {
    // Upstream: "no longer needed ... it will succeed as a no-op".
    Deno.exit(0);
  }
  const csiAddress = values["csi-address"].replace(/^unix:\/\//, "");
  const name = await driverName(csiAddress);
  log(`driver ${name}, kubelet endpoint ${endpoint}`);

  const def = protoLoader.fromJSON(
    REGISTRATION_API as Parameters<typeof protoLoader.fromJSON>[0],
    PROTO_LOADER_OPTIONS,
  );
  const service = def["pluginregistration.Registration"] as grpc.ServiceDefinition;
  const socketPath = `${values["plugin-registration-path"]}/${name}-reg.sock`;
  await Deno.remove(socketPath).catch(() => {});
  const server = new grpc.Server();
  server.addService(service, {
    GetInfo: (_call: unknown, callback: grpc.sendUnaryData<unknown>) => {
      log("GetInfo from the kubelet");
      callback(null, {
        type: "CSIPlugin",
        name,
        endpoint,
        supported_versions: ["1.0.0"],
      });
    },
    NotifyRegistrationStatus: (
      call: grpc.ServerUnaryCall<{ plugin_registered: boolean; error: string }, unknown>,
      callback: grpc.sendUnaryData<unknown>,
    ) => {
      const { plugin_registered: registered, error } = call.request;
      log(`registration status: registered=${registered}${error ? ` error=${error}` : ""}`);
      callback(null, {});
      if (!registered) {
        // Answer first, then leave: the kubelet restarts the container.
        setTimeout(() => Deno.exit(1), 100);
      }
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(`unix://${socketPath}`, grpc.ServerCredentials.createInsecure(), (err) => {
      if (err) reject(new Error(`cannot listen on ${socketPath}: ${err.message}`));
      else resolve();
    });
  });
  log(`serving the registration API on ${socketPath}`);
  const stop = () => {
    server.forceShutdown();
    // grpc-js has unlinked it already; upstream removes it too, missing or not.
    try {
      Deno.removeSync(socketPath);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
}

if (import.meta.main) {
  main().catch((e) => {
    console.error(`registrar-standin: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  });
}
