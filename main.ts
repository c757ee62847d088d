/**
 * zerofs-csi: the CSI driver's command line.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  ControllerSettings,
  createControllerService,
  createIdentityService,
  createLogger,
  createNodeService,
  type CsiServer,
  DRIVER_NAME,
  DRIVER_VERSION,
  FileVolumeRegistry,
  type Logger,
  MirroredVolumeRegistry,
  type NodeOptions,
  ObjectStoreVolumeRegistry,
  parseLogLevel,
  startCsiServer,
  VolumeLocks,
  type VolumeRegistry,
} from "./csi/mod.ts";

const DEFAULT_STATE_DIR = "/var/lib/zerofs-csi";

/** Exit codes. */
const EXIT_USAGE = 2;
const EXIT_FAILURE = 1;

const USAGE: Record<string, string> = {
  main: `Usage: zerofs-csi <verb> [flags]

Verbs:
  controller   serve the CSI Identity and Controller services
  node         serve the CSI Identity and Node services
  status       show this node's volumes (not yet implemented)
  attach       attach a volume by hand (not yet implemented)
  detach       detach a volume by hand (not yet implemented)
  doctor       check this node's prerequisites (not yet implemented)
  version      print the driver version

Run "zerofs-csi <verb> --help" for a verb's flags.`,
  controller: `Usage: zerofs-csi controller --endpoint unix:///path/csi.sock [flags]

  --endpoint             CSI socket (unix:///abs/path or /abs/path)   (required)
  --state-dir            controller state directory           (default ${DEFAULT_STATE_DIR})
  --settings-file        driver settings (TOML: top-level defaults, [configMaps.<name>])
  --default-config-map   ConfigMap locating volumes without a record (original driver's)
  --volume-records       local|object-store|auto: where volume records live   (default auto:
                         object-store when the default storageURL is s3://, else local)
  --delete-timeout-ms    bound on one object-store request in DeleteVolume  (default 30000)
  --log-level            debug|info|warn|error                (default info)
  --help                 show this help

  Credentials: the CSI provisioner secrets, else AWS_ACCESS_KEY_ID /
  AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN from the environment.`,
  node: `Usage: zerofs-csi node --endpoint unix:///path/csi.sock [flags]

  --endpoint      CSI socket (unix:///abs/path or /abs/path)  (required)
  --node-id       node name as Kubernetes knows it            (default: hostname)
  --state-dir     state root                                  (default ${DEFAULT_STATE_DIR})
  --attach-mode   kernel|userspace|auto                       (default auto)
  --runner        process|pod                                 (default process)
  --zerofs-bin    ZeroFS binary (process runner)              (default zerofs)
  --settings-file driver settings file
  --kubeconfig    kubeconfig (default: in-cluster)
  --namespace     driver namespace                            (default zerofs)
  --max-volumes   cap on volumes per node
  --log-level     debug|info|warn|error                       (default info)
  --help          show this help`,
  version: `Usage: zerofs-csi version`,
  status: `Usage: zerofs-csi status (not yet implemented)`,
  attach: `Usage: zerofs-csi attach (not yet implemented)`,
  detach: `Usage: zerofs-csi detach (not yet implemented)`,
  doctor: `Usage: zerofs-csi doctor (not yet implemented)`,
};

class UsageError extends Error {
  constructor(message: string, readonly verb: string) {
    super(message);
  }
}

type Flags = Record<string, string | boolean | undefined>;

function parseFlags(
  verb: string,
  argv: string[],
  options: Record<string, { type: "string" | "boolean"; default?: string }>,
): Flags {
  try {
    const { values } = parseArgs({
      args: argv,
      options: { ...options, help: { type: "boolean" } },
      strict: true,
      allowPositionals: false,
    });
    return values as Flags;
  } catch (e) {
    throw new UsageError((e as Error).message, verb);
  }
}

function oneOf<T extends string>(verb: string, flag: string, value: string, allowed: T[]): T {
  if (!allowed.includes(value as T)) {
    throw new UsageError(`--${flag} must be one of ${allowed.join(", ")}, not "${value}"`, verb);
  }
  return value as T;
}

function requireFlag(verb: string, flags: Flags, name: string): string {
  const v = flags[name];
  if (typeof v !== "string" || v === "") throw new UsageError(`--${name} is required`, verb);
  return v;
}

function logLevelOf(verb: string, flags: Flags) {
  try {
    return parseLogLevel(String(flags["log-level"] ?? "info"));
  } catch (e) {
    throw new UsageError((e as Error).message, verb);
  }
}

async function runController(argv: string[]): Promise<number> {
  const flags = parseFlags("controller", argv, {
    endpoint: { type: "string" },
    "state-dir": { type: "string", default: DEFAULT_STATE_DIR },
    "settings-file": { type: "string" },
    "default-config-map": { type: "string" },
    "volume-records": { type: "string", default: "auto" },
    "delete-timeout-ms": { type: "string", default: "30000" },
    "log-level": { type: "string", default: "info" },
  });
  if (flags.help) return printHelp("controller");
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
  const log = createLogger(logLevelOf("controller", flags));
  const defaultConfigMapName = typeof flags["default-config-map"] === "string"
    ? flags["default-config-map"]
    : undefined;
  const settings = typeof flags["settings-file"] === "string"
    ? await ControllerSettings.load(flags["settings-file"], { defaultConfigMapName })
    : new ControllerSettings({ defaultConfigMapName });
  const registry = await controllerRegistry(String(flags["state-dir"]), settings, recordsMode, log);
  const server = await startCsiServer(endpoint, {
    pipeline: { log, locks: new VolumeLocks() },
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
  return serveUntilSignal(server, log, { mode: "controller" });
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

function nodeOptions(flags: Flags): NodeOptions {
  const maxVolumes = flags["max-volumes"];
  let max: number | undefined;
  if (typeof maxVolumes === "string") {
    max = Number(maxVolumes);
    if (!Number.isSafeInteger(max) || max < 1) {
      throw new UsageError(`--max-volumes must be a positive integer, not "${maxVolumes}"`, "node");
    }
  }
  return {
    endpoint: requireFlag("node", flags, "endpoint"),
    nodeId: typeof flags["node-id"] === "string" ? flags["node-id"] : Deno.hostname(),
    stateDir: String(flags["state-dir"]),
    attachMode: oneOf("node", "attach-mode", String(flags["attach-mode"]), [
      "kernel",
      "userspace",
      "auto",
    ]),
    runner: oneOf("node", "runner", String(flags.runner), ["process", "pod"]),
    zerofsBin: String(flags["zerofs-bin"]),
    ...(typeof flags["settings-file"] === "string" ? { settingsFile: flags["settings-file"] } : {}),
    ...(typeof flags.kubeconfig === "string" ? { kubeconfig: flags.kubeconfig } : {}),
    namespace: String(flags.namespace),
    ...(max !== undefined ? { maxVolumes: max } : {}),
  };
}

async function runNode(argv: string[]): Promise<number> {
  const flags = parseFlags("node", argv, {
    endpoint: { type: "string" },
    "node-id": { type: "string" },
    "state-dir": { type: "string", default: DEFAULT_STATE_DIR },
    "attach-mode": { type: "string", default: "auto" },
    runner: { type: "string", default: "process" },
    "zerofs-bin": { type: "string", default: "zerofs" },
    "settings-file": { type: "string" },
    kubeconfig: { type: "string" },
    namespace: { type: "string", default: "zerofs" },
    "max-volumes": { type: "string" },
    "log-level": { type: "string", default: "info" },
  });
  if (flags.help) return printHelp("node");
  const opts = nodeOptions(flags);
  const log = createLogger(logLevelOf("node", flags));
  const server = await startCsiServer(opts.endpoint, {
    pipeline: { log, locks: new VolumeLocks() },
    handlers: {
      Identity: createIdentityService({ controllerService: true }),
      Node: await createNodeService(opts, log),
    },
  });
  return serveUntilSignal(server, log, { mode: "node" });
}

async function serveUntilSignal(
  server: CsiServer,
  log: Logger,
  o: { mode: string },
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
  log.log("info", "stopped", {});
  return 0;
}

function printHelp(verb: string): number {
  console.log(USAGE[verb]);
  return 0;
}

function notYet(verb: string, argv: string[]): number {
  const flags = parseFlags(verb, argv, {});
  if (flags.help) return printHelp(verb);
  console.error(`zerofs-csi ${verb}: not yet implemented`);
  return EXIT_FAILURE;
}

/** Run the CLI with `args` (without the program name); resolves with the exit code. */
export async function main(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  try {
    switch (verb) {
      case "controller":
        return await runController(rest);
      case "node":
        return await runNode(rest);
      case "version": {
        const flags = parseFlags("version", rest, {});
        if (flags.help) return printHelp("version");
        console.log(`${DRIVER_NAME} ${DRIVER_VERSION}`);
        return 0;
      }
      case "status":
      case "attach":
      case "detach":
      case "doctor":
        return notYet(verb, rest);
      case "--help":
      case "-h":
      case "help":
        return printHelp("main");
      default:
        throw new UsageError(verb ? `unknown verb "${verb}"` : "a verb is required", "main");
    }
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`zerofs-csi: ${e.message}\n\n${USAGE[e.verb] ?? USAGE.main}`);
      return EXIT_USAGE;
    }
    console.error(`zerofs-csi ${verb}: ${e instanceof Error ? e.message : String(e)}`);
    return EXIT_FAILURE;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
