/**
 * Settings for the standalone node agent (process runner): driver defaults
 * and named ConfigMaps from a TOML settings file, secret values from the CSI
 * node-stage secrets over the agent's own environment.
 *
 * @module
 */

import { rememberSecretValues } from "../redact.ts";
import { parse as parseToml } from "smol-toml";
import {
  checkSecretValues,
  ENV_AWS_ACCESS_KEY_ID,
  ENV_AWS_SECRET_ACCESS_KEY,
  ENV_AWS_SESSION_TOKEN,
  ENV_ENCRYPTION_PASSWORD,
  parseSettings,
  type SecretValues,
  secretValuesFromCsiSecrets,
  SettingsError,
  type VolumeSettings,
} from "../../zerofs/mod.ts";
import { resolveContextSettings } from "../parameters.ts";
import type { SettingsProvider } from "./context.ts";

/** The parsed settings file: top-level keys are defaults, `[configMaps.<name>]` tables are ConfigMaps. */
export interface SettingsFile {
  /** Where it was read, for messages. */
  path?: string;
  defaults: Record<string, string>;
  configMaps: Record<string, Record<string, string>>;
}

/** Parse the standalone settings file; every value must be a string, number or boolean. */
export function parseSettingsFile(text: string, path: string): SettingsFile {
  const doc = parseToml(text) as Record<string, unknown>;
  const defaults: Record<string, string> = {};
  const configMaps: Record<string, Record<string, string>> = {};
  for (const [key, value] of Object.entries(doc)) {
    if (key === "configMaps" && typeof value === "object" && value !== null) {
      for (const [name, data] of Object.entries(value)) {
        configMaps[name] = stringTable(data, `${path}: [configMaps.${name}]`);
      }
    } else {
      defaults[key] = scalar(value, `${path}: key "${key}"`);
    }
  }
  return { path, defaults, configMaps };
}

function stringTable(value: unknown, where: string): Record<string, string> {
  if (typeof value !== "object" || value === null) {
    throw new SettingsError(`${where} must be a table of key = value`);
  }
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [k, scalar(v, `${where} key "${k}"`)]),
  );
}

function scalar(value: unknown, where: string): string {
  if (["string", "number", "boolean"].includes(typeof value)) return String(value);
  throw new SettingsError(`${where} must be a string, number or boolean`);
}

/** Standalone settings: the file's defaults and ConfigMaps, secrets from CSI secrets or env. */
export class FileSettingsProvider implements SettingsProvider {
  readonly #defaults: Partial<VolumeSettings>;

  constructor(
    readonly file: SettingsFile,
    readonly env: (name: string) => string | undefined = (n) => Deno.env.get(n),
  ) {
    // A malformed defaults table fails at start, not at the first stage.
    this.#defaults = parseSettings(file.defaults, { kind: "settings file", path: file.path });
  }

  /** Load from `path`; a missing file is an error naming the flag. */
  static async load(path: string): Promise<FileSettingsProvider> {
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (e) {
      throw new SettingsError(
        `cannot read --settings-file ${path}: ${(e as Error).message}`,
        "precondition",
      );
    }
    return new FileSettingsProvider(parseSettingsFile(text, path));
  }

  resolve(
    volumeContext: Record<string, string>,
    csiSecrets: Record<string, string>,
  ): Promise<{ settings: VolumeSettings; secrets: SecretValues }> {
    const name = volumeContext.configMapName;
    const configMap = name ? this.file.configMaps[name] : undefined;
    if (name && !configMap) {
      return Promise.reject(
        new SettingsError(
          `ConfigMap "${name}" (StorageClass parameter configMapName) is not defined in the ` +
            `settings file; add a [configMaps.${name}] table`,
          "precondition",
        ),
      );
    }
    const settings = resolveContextSettings(volumeContext, configMap, this.#defaults);
    const secrets = { ...this.#envSecrets(), ...secretValuesFromCsiSecrets(csiSecrets) };
    rememberSecretValues(Object.values(secrets));
    checkSecretValues(secrets);
    return Promise.resolve({ settings, secrets });
  }

  #envSecrets(): SecretValues {
    const values: SecretValues = {
      encryptionPassword: this.env(ENV_ENCRYPTION_PASSWORD),
      awsAccessKeyId: this.env(ENV_AWS_ACCESS_KEY_ID),
      awsSecretAccessKey: this.env(ENV_AWS_SECRET_ACCESS_KEY),
      awsSessionToken: this.env(ENV_AWS_SESSION_TOKEN),
    };
    return Object.fromEntries(Object.entries(values).filter(([, v]) => v)) as SecretValues;
  }
}
