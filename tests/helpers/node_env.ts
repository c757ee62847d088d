/**
 * A controller and a node agent started through `main.ts` under their real
 * permission sets, with the ZeroFS stand-in on PATH, a settings file and a
 * private state directory — the setting of the node integration tests, the
 * demo and the benchmark.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { STANDIN_BIN, STANDIN_ROOT_ENV } from "../fixtures/zerofs_standin/mod.ts";
import { makeTestDir, type RunningDriver, startDriver } from "./driver.ts";

/** A running controller + node pair and the paths around them. */
export interface NodeEnvironment {
  dir: string;
  stateDir: string;
  controller: RunningDriver;
  node: RunningDriver;
  /** Where kubelet would create staging and target paths. */
  kubeletDir: string;
  /** Start the node agent again (after `node.stop()` or a kill). */
  restartNode(): Promise<RunningDriver>;
  /** Stop both services and remove the directory (after the test unstaged everything). */
  stop(): Promise<void>;
}

/** Options for {@linkcode startNodeEnvironment}. */
export interface NodeEnvironmentOptions {
  /** ZeroFS binary; default: the stand-in. */
  zerofsBin?: string;
  attachMode?: "auto" | "userspace" | "kernel";
  /** Root directory for state and sockets; default a fresh /run/zerofs-csi/test-*. */
  dir?: string;
  extraNodeArgs?: string[];
  env?: Record<string, string>;
}

/** A password that satisfies ZeroFS's rules; test-only. */
export const TEST_ENCRYPTION_PASSWORD = 'test-password-$"\\-not-a-secret';

/** Start controller and node agent; the node uses the process runner. */
export async function startNodeEnvironment(
  opts: NodeEnvironmentOptions = {},
): Promise<NodeEnvironment> {
  const dir = opts.dir ?? await makeTestDir();
  const stateDir = join(dir, "state");
  const kubeletDir = join(dir, "kubelet");
  await Deno.mkdir(kubeletDir, { recursive: true });
  const settingsFile = join(dir, "settings.toml");
  await Deno.writeTextFile(
    settingsFile,
    `storageURL = "s3://zerofs-test/volumes"\ncacheDiskSizeGB = 1\n`,
  );
  const zerofsBin = opts.zerofsBin ?? STANDIN_BIN;
  const env = {
    PATH: `${dirname(zerofsBin)}:${Deno.env.get("PATH")}`,
    ZEROFS_ENCRYPTION_PASSWORD: TEST_ENCRYPTION_PASSWORD,
    [STANDIN_ROOT_ENV]: join(dir, "store"),
    HOME: Deno.env.get("HOME") ?? "/root",
    ...opts.env,
  };
  const controller = await startDriver({
    mode: "controller",
    args: ["--endpoint", `unix://${dir}/controller.sock`, "--state-dir", join(dir, "controller")],
    env,
  });
  const nodeArgs = [
    "--endpoint",
    `unix://${dir}/node.sock`,
    "--node-id",
    "test-node",
    "--state-dir",
    stateDir,
    "--attach-mode",
    opts.attachMode ?? "auto",
    "--settings-file",
    settingsFile,
    ...(opts.extraNodeArgs ?? []),
  ];
  const startNode = () => startDriver({ mode: "node", args: nodeArgs, env });
  const environment: NodeEnvironment = {
    dir,
    stateDir,
    kubeletDir,
    controller,
    node: await startNode(),
    async restartNode() {
      environment.node = await startNode();
      return environment.node;
    },
    async stop() {
      await environment.node.stop().catch(() => {});
      await controller.stop().catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
  return environment;
}
