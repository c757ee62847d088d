/**
 * `zerofs-csi controller`: the Identity and Controller services.
 *
 * @module
 */

import { createKubeClient, type KubeClient } from "../../kube/mod.ts";
import {
  ControllerSettings,
  type ControllerSettingsOptions,
  KubeConfigMapSource,
  KubeSecretSource,
} from "../controller_settings.ts";
import { createControllerService } from "../controller.ts";
import { createIdentityService } from "../identity.ts";
import { ANY_NODE, FileKnownNodes, type KnownNodes, KubeKnownNodes } from "../known_nodes.ts";
import { VolumeLocks } from "../locks.ts";
import type { Logger } from "../log.ts";
import type { PipelineContext } from "../pipeline.ts";
import { FileVolumeRegistry, type VolumeRegistry } from "../registry.ts";
import { startCsiServer } from "../server.ts";
import { MirroredVolumeRegistry, ObjectStoreVolumeRegistry } from "../volume_store.ts";
import {
  DEFAULT_STATE_DIR,
  type Flags,
  LOG_FLAGS,
  loggerFrom,
  oneOf,
  optionalFlag,
  parseFlags,
  requireFlag,
  UsageError,
} from "./flags.ts";
import { metricsFor, serveUntilSignal } from "./serve.ts";
import { printUsage } from "./usage.ts";

/** Run the controller until a termination signal; resolves with the exit code. */
export async function runController(argv: string[]): Promise<number> {
  const flags = parseFlags("controller", argv, {
    endpoint: { type: "string" },
    "state-dir": { type: "string", default: DEFAULT_STATE_DIR },
    "settings-file": { type: "string" },
    "default-config-map": { type: "string" },
    "config-source": { type: "string", default: "auto" },
    kubeconfig: { type: "string" },
    namespace: { type: "string", default: "zerofs" },
    "volume-records": { type: "string", default: "auto" },
    "delete-timeout-ms": { type: "string", default: "30000" },
    "metrics-address": { type: "string" },
    "node-registry": { type: "string" },
    ...LOG_FLAGS,
  });
  if (flags.help) return printUsage("controller");
  const endpoint = requireFlag("controller", flags, "endpoint");
  const recordsMode = oneOf("controller", "volume-records", String(flags["volume-records"]), [
    "local",
    "object-store",
    "auto",
  ]);
  const deleteTimeoutMs = Number(flags["delete-timeout-ms"]);
  if (!Number.isSafeInteger(deleteTimeoutMs) || deleteTimeoutMs < 1000) {
    throw new UsageError("--delete-timeout-ms must be a whole number ≥ 1000", "controller");
  }
  const log = loggerFrom("controller", flags);
  const { settings, kube } = await controllerSettings(flags, log);
  const knownNodes = knownNodesFrom(optionalFlag(flags, "node-registry"), kube);
  log.log(knownNodes === ANY_NODE ? "warn" : "info", "node existence", {
    source: knownNodes.source,
    ...(knownNodes === ANY_NODE
      ? { reason: "no Kubernetes API and no --node-registry: publishing to any node_id succeeds" }
      : {}),
  });
  const registry = await controllerRegistry(String(flags["state-dir"]), settings, recordsMode, log);
  const pipeline: PipelineContext = { log, locks: new VolumeLocks() };
  const metrics = await metricsFor(optionalFlag(flags, "metrics-address"), pipeline, log);
  const server = await startCsiServer(endpoint, {
    pipeline,
    handlers: {
      Identity: createIdentityService({ controllerService: true }),
      Controller: createControllerService({
        registry,
        settings,
        log,
        deleteTimeouts: { requestTimeoutMs: deleteTimeoutMs },
        knownNodes,
      }),
    },
  });
  return serveUntilSignal(server, log, { mode: "controller", onStop: metrics?.close });
}

/**
 * Settings sources from the flags. `--config-source auto` = `api` when the
 * process runs in a pod (KUBERNETES_SERVICE_HOST) or `--kubeconfig` is
 * given, else `file`. `api`: ConfigMaps and the credentials Secret come from
 * `--namespace` through the Kubernetes API (client-node is loaded only then);
 * `--settings-file` may still give defaults.
 */
async function controllerSettings(
  flags: Flags,
  log: Logger,
): Promise<{ settings: ControllerSettings; kube?: KubeClient }> {
  const source = oneOf("controller", "config-source", String(flags["config-source"]), [
    "api",
    "file",
    "auto",
  ]);
  const kubeconfig = optionalFlag(flags, "kubeconfig");
  if (source === "file" && kubeconfig) {
    throw new UsageError(
      "--kubeconfig is only used with --config-source api (or auto); drop one of them",
      "controller",
    );
  }
  const useApi = source === "api" ||
    (source === "auto" && (kubeconfig !== undefined || Boolean(Deno.env.get(IN_CLUSTER_HOST))));
  const namespace = String(flags.namespace);
  const opts: Omit<ControllerSettingsOptions, "defaults"> = {
    defaultConfigMapName: optionalFlag(flags, "default-config-map"),
  };
  let kube: KubeClient | undefined;
  if (useApi) {
    kube = await createKubeClient({ kubeconfig });
    opts.configMaps = new KubeConfigMapSource(kube, namespace);
    opts.secrets = new KubeSecretSource(kube, namespace);
    opts.namespace = namespace;
  }
  const settingsFile = optionalFlag(flags, "settings-file");
  const settings = settingsFile
    ? await ControllerSettings.load(settingsFile, opts)
    : new ControllerSettings(opts);
  log.log("info", "settings sources", {
    config_source: useApi ? "api" : "file",
    ...(useApi ? { namespace, api: kubeconfig ? "kubeconfig" : "in-cluster" } : {}),
    settings_file: settingsFile ?? "(none)",
    default_config_map: opts.defaultConfigMapName ?? "(none)",
  });
  return { settings, kube };
}

/**
 * Where ControllerPublishVolume learns which nodes exist: the node registry
 * directory when given (the node agents write it), else the API's CSINode
 * objects when the controller reads the API, else nowhere (every node_id is
 * accepted: refusing would break every standalone set-up without a registry,
 * while a CO only publishes to nodes it runs workloads on).
 */
function knownNodesFrom(registryDir: string | undefined, kube?: KubeClient): KnownNodes {
  if (registryDir) return new FileKnownNodes(registryDir);
  if (kube) return new KubeKnownNodes(kube);
  return ANY_NODE;
}

/** Set in every pod: the in-cluster API server's address. */
const IN_CLUSTER_HOST = "KUBERNETES_SERVICE_HOST";

/** Local file records, mirrored to `<default storageURL>/.zerofs-csi-volumes/` when asked or possible. */
async function controllerRegistry(
  stateDir: string,
  settings: ControllerSettings,
  mode: "local" | "object-store" | "auto",
  log: Logger,
): Promise<VolumeRegistry> {
  const local = new FileVolumeRegistry(stateDir);
  await local.init();
  if (mode === "local") return local;
  const home = await settings.homeAccess();
  const s3 = home?.settings.storageURL.startsWith("s3://");
  if (!home || !s3) {
    if (mode === "object-store") {
      throw new UsageError(
        "--volume-records object-store needs an s3:// storageURL in the settings file's " +
          "defaults or in --default-config-map",
        "controller",
      );
    }
    log.log("warn", "volume records are kept only in the state directory", {
      state_dir: stateDir,
      reason: "no s3:// default storageURL; they are lost if the controller moves",
    });
    return local;
  }
  const remote = new ObjectStoreVolumeRegistry(home);
  log.log("info", "volume records in the object store", {
    location: `s3://${remote.bucket}/${remote.prefix}`,
  });
  return new MirroredVolumeRegistry(local, remote);
}
