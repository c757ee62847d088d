/**
 * Bring one volume's ZeroFS to "running with exactly this config and ready".
 *
 * @module
 */

import { createHash } from "node:crypto";
import { type InstanceSpec, renderConfigToml, type VolumePaths } from "../../zerofs/mod.ts";
import type { NodeContext } from "./context.ts";

/** Build the runner's spec for a volume: config text, its hash and the secret env. */
export async function instanceSpecFor(
  ctx: NodeContext,
  opts: {
    volumeId: string;
    paths: VolumePaths;
    readOnly: boolean;
    volumeContext: Record<string, string>;
    secrets: Record<string, string>;
  },
): Promise<InstanceSpec> {
  const { settings, secrets } = await ctx.settings.resolve(opts.volumeContext, opts.secrets);
  const view = ctx.runner.view({ paths: opts.paths, settings, secrets });
  const configToml = renderConfigToml(settings, {
    volumeId: opts.volumeId,
    ninepSocket: view.ninepSocket,
    nbdSocket: view.nbdSocket,
    cacheDir: view.cacheDir,
    readOnly: opts.readOnly,
    secretEnvNames: view.secretEnvNames,
  });
  const configHash = createHash("sha256")
    .update(configToml)
    .update(opts.readOnly ? "\0reader" : "\0writer")
    .digest("hex");
  return {
    volumeId: opts.volumeId,
    stateDir: opts.paths.dir,
    configToml,
    configHash,
    secretEnv: view.secretEnv,
    readOnly: opts.readOnly,
    ninepSocket: opts.paths.ninepSocket,
    nbdSocket: opts.paths.nbdSocket,
    exportName: "",
    settings,
  };
}
