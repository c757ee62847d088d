/**
 * Bring one volume's ZeroFS to "running with exactly this config and ready".
 *
 * @module
 */

import { createHash } from "node:crypto";
import {
  applyPin,
  describeDisagreement,
  formatZeroFsVersion,
  type InstanceSpec,
  renderConfigToml,
  type VolumePaths,
  type VolumePin,
  type VolumeSettings,
  zerofsFeatures,
  type ZeroFsRunner,
  type ZeroFsVersion,
} from "../../zerofs/mod.ts";
import { failedPrecondition } from "../errors.ts";
import type { NodeContext } from "./context.ts";

/**
 * Build the runner's spec for a volume: config text, its hash and the secret
 * env. The settings are resolved as always, then the volume's pin (where it
 * lives, which Secrets) replaces what they say for the pinned keys.
 */
export async function instanceSpecFor(
  ctx: NodeContext,
  opts: {
    volumeId: string;
    paths: VolumePaths;
    readOnly: boolean;
    volumeContext: Record<string, string>;
    pin: VolumePin | null;
    secrets: Record<string, string>;
  },
): Promise<InstanceSpec> {
  const resolved = await ctx.settings.resolve(opts.volumeContext, opts.secrets);
  const settings = await settingsAtPin(ctx, opts, resolved.settings);
  const secrets = resolved.secrets;
  const version = await ctx.runner.version(settings);
  if (opts.readOnly) requireReaderSupport(opts.volumeId, version);
  return buildInstanceSpec(ctx.runner, { ...opts, settings, secrets, version });
}

/**
 * The runner's spec from settings already resolved: config text, its hash
 * (a reader and a writer of the same config differ) and the secret env.
 */
export function buildInstanceSpec(
  runner: Pick<ZeroFsRunner, "view">,
  opts: {
    volumeId: string;
    paths: VolumePaths;
    readOnly: boolean;
    settings: VolumeSettings;
    secrets: Parameters<ZeroFsRunner["view"]>[0]["secrets"];
    version: ZeroFsVersion;
  },
): InstanceSpec {
  const { settings, version } = opts;
  const view = runner.view({ paths: opts.paths, settings, secrets: opts.secrets });
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
 * `settings` with the volume's pin applied. Where the settings now say
 * something else (a ConfigMap edited after the volume was created), the pin
 * wins: each such key is logged and the PVC gets one Warning event. Values
 * named are never secret values (URLs with credentials are refused; Secrets
 * appear by name only).
 */
export async function settingsAtPin(
  ctx: Pick<NodeContext, "log" | "events">,
  opts: { volumeId: string; volumeContext: Record<string, string>; pin: VolumePin | null },
  settings: VolumeSettings,
): Promise<VolumeSettings> {
  if (!opts.pin) return settings;
  const pinned = applyPin(settings, opts.pin);
  if (pinned.disagreements.length === 0) return pinned.settings;
  const lines = pinned.disagreements.map(describeDisagreement);
  for (const [i, d] of pinned.disagreements.entries()) {
    ctx.log.log("warn", "the settings disagree with the volume's pin", {
      volume_id: opts.volumeId,
      setting: d.key,
      detail: lines[i],
    });
  }
  await ctx.events.warn({
    volumeId: opts.volumeId,
    volumeContext: opts.volumeContext,
    reason: PIN_DISAGREEMENT_REASON,
    message: `the volume's settings changed after it was created: ${lines.join("; ")}. ` +
      `The volume stays where it was created; to silence this, restore the old values`,
  });
  return pinned.settings;
}

/** The Event reason when the settings disagree with a volume's pin. */
export const PIN_DISAGREEMENT_REASON = "PinnedSettingsDiffer";

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
