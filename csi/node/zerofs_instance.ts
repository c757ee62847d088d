/**
 * Bring one volume's ZeroFS to "running with exactly this config and ready".
 *
 * @module
 */

import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  type InstanceSpec,
  renderConfigToml,
  secretEnv,
  type VolumePaths,
} from "../../zerofs/mod.ts";
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
  const configToml = renderConfigToml(settings, {
    volumeId: opts.volumeId,
    ninepSocket: opts.paths.ninepSocket,
    nbdSocket: opts.paths.nbdSocket,
    cacheDir: join(settings.cacheDir ?? join(opts.paths.dir, "cache"), "zerofs"),
    readOnly: opts.readOnly,
    secretEnvNames: Object.keys(secretEnv(secrets)),
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
    secretEnv: secretEnv(secrets),
    readOnly: opts.readOnly,
    ninepSocket: opts.paths.ninepSocket,
    nbdSocket: opts.paths.nbdSocket,
    exportName: "",
  };
}
