/**
 * `zerofs-csi controller`: the Identity and Controller services.
 *
 * @module
 */

import { ControllerSettings } from "../controller_settings.ts";
import { createControllerService } from "../controller.ts";
import { createIdentityService } from "../identity.ts";
import { VolumeLocks } from "../locks.ts";
import type { Logger } from "../log.ts";
import type { PipelineContext } from "../pipeline.ts";
import { FileVolumeRegistry, type VolumeRegistry } from "../registry.ts";
import { startCsiServer } from "../server.ts";
import { MirroredVolumeRegistry, ObjectStoreVolumeRegistry } from "../volume_store.ts";
import {
  DEFAULT_STATE_DIR,
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
    "volume-records": { type: "string", default: "auto" },
    "delete-timeout-ms": { type: "string", default: "30000" },
    "metrics-address": { type: "string" },
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
  const defaultConfigMapName = optionalFlag(flags, "default-config-map");
  const settingsFile = optionalFlag(flags, "settings-file");
  const settings = settingsFile
    ? await ControllerSettings.load(settingsFile, { defaultConfigMapName })
    : new ControllerSettings({ defaultConfigMapName });
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
      }),
    },
  });
  return serveUntilSignal(server, log, { mode: "controller", onStop: metrics?.close });
}

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
