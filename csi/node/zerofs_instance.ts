/**
 * Bring one volume's ZeroFS to "running with exactly this config and ready".
 *
 * @module
 */

import { createHash } from "node:crypto";
import {
  formatZeroFsVersion,
  type InstanceSpec,
  renderConfigToml,
  type VolumePaths,
  zerofsFeatures,
  type ZeroFsVersion,
} from "../../zerofs/mod.ts";
import { failedPrecondition } from "../errors.ts";
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
  const version = await ctx.runner.version(settings);
  if (opts.readOnly) requireReaderSupport(opts.volumeId, version);
  const view = ctx.runner.view({ paths: opts.paths, settings, secrets });
  const configToml = renderConfigToml(settings, {
    volumeId: opts.volumeId,
    version,
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
    zerofsVersion: version,
  };
}

/**
 * Read-only access runs ZeroFS as a reader (`run --read-only`, from 0.17.0):
 * a second read-write instance would fence the writer. Refused, not attempted.
 */
function requireReaderSupport(volumeId: string, version: ZeroFsVersion): void {
  if (zerofsFeatures(version).readOnlyServer) return;
  throw failedPrecondition(
    `cannot stage volume "${volumeId}" read-only: it needs a ZeroFS reader ` +
      `(run --read-only, added in ZeroFS 0.17.0) and this node runs ZeroFS ` +
      `${formatZeroFsVersion(version)}; use a read-write access mode or a newer ZeroFS`,
  );
}
