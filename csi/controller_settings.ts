/**
 * Where the controller finds a volume's object-store settings and
 * credentials: the StorageClass parameters it recorded at CreateVolume, the
 * ConfigMap they name, the controller's defaults (settings file), and secret
 * values from the CSI provisioner secrets over the controller's environment.
 *
 * @module
 */

import {
  checkSecretValues,
  ENV_AWS_ACCESS_KEY_ID,
  ENV_AWS_SECRET_ACCESS_KEY,
  ENV_AWS_SESSION_TOKEN,
  type ObjectStoreAccess,
  resolveSettings,
  type SecretValues,
  secretValuesFromCsiSecrets,
  SettingsError,
} from "../zerofs/mod.ts";
import { parseSettingsFile, type SettingsFile } from "./node/mod.ts";

/** Reads ConfigMap data by name (driver namespace); `undefined` when it does not exist. */
export interface ConfigMapSource {
  get(name: string): Promise<Record<string, string> | undefined>;
}

/** ConfigMaps from the settings file's `[configMaps.<name>]` tables. */
export class FileConfigMapSource implements ConfigMapSource {
  constructor(readonly configMaps: Record<string, Record<string, string>>) {}
  get(name: string): Promise<Record<string, string> | undefined> {
    const data = Object.hasOwn(this.configMaps, name) ? this.configMaps[name] : undefined;
    return Promise.resolve(data ? { ...data } : undefined);
  }
}

/** Inputs of {@linkcode ControllerSettings}. */
export interface ControllerSettingsOptions {
  /** Top-level keys of the settings file: driver defaults (settings keys only). */
  defaults?: Record<string, string>;
  configMaps?: ConfigMapSource;
  /**
   * ConfigMap whose settings locate a volume the controller has no record of
   * (a volume of the original Go driver, or one whose record was lost).
   */
  defaultConfigMapName?: string;
  /** Environment lookup for credentials (tests inject it). */
  env?: (name: string) => string | undefined;
}

/**
 * The controller's view of settings. Never holds secret values: credentials
 * are read per call (CSI secrets, then environment) and handed straight to
 * the object-store client.
 */
export class ControllerSettings {
  readonly defaults: Record<string, string>;
  readonly configMaps: ConfigMapSource;
  readonly defaultConfigMapName?: string;
  readonly #env: (name: string) => string | undefined;

  constructor(opts: ControllerSettingsOptions = {}) {
    this.defaults = { ...opts.defaults };
    this.configMaps = opts.configMaps ?? new FileConfigMapSource({});
    this.defaultConfigMapName = opts.defaultConfigMapName;
    this.#env = opts.env ?? ((n) => Deno.env.get(n));
    // Fail at start on a malformed defaults table, not on the first volume.
    if (Object.keys(this.defaults).length > 0) {
      resolveSettings({ parameters: {}, configMap: { storageURL: "memory://", ...this.defaults } });
    }
  }

  /** Load `--settings-file` (same TOML format as the node's). A missing file is an error naming the flag. */
  static async load(
    path: string,
    opts: Omit<ControllerSettingsOptions, "defaults" | "configMaps"> = {},
  ): Promise<ControllerSettings> {
    let file: SettingsFile;
    try {
      file = parseSettingsFile(await Deno.readTextFile(path), path);
    } catch (e) {
      if (e instanceof SettingsError) throw e;
      throw new SettingsError(
        `cannot read --settings-file ${path}: ${(e as Error).message}`,
        "precondition",
      );
    }
    return new ControllerSettings({
      ...opts,
      defaults: file.defaults,
      configMaps: new FileConfigMapSource(file.configMaps),
    });
  }

  /**
   * Settings and credentials of a volume created with `parameters`
   * (StorageClass parameters as recorded). Missing ConfigMap →
   * FAILED_PRECONDITION; no storageURL anywhere → INVALID_ARGUMENT.
   */
  async access(
    parameters: Record<string, string>,
    csiSecrets: Record<string, string> = {},
  ): Promise<ObjectStoreAccess> {
    const configMap = await this.#configMap(parameters.configMapName, "StorageClass parameter");
    const settings = resolveSettings({
      parameters,
      configMap: { ...this.defaults, ...configMap },
    });
    return { settings, secrets: this.secrets(csiSecrets) };
  }

  /**
   * Settings for a volume without a record: the default ConfigMap (flag)
   * over the file's defaults, or `null` when they name no storageURL.
   */
  async legacyAccess(csiSecrets: Record<string, string> = {}): Promise<ObjectStoreAccess | null> {
    const configMap = await this.#configMap(this.defaultConfigMapName, "--default-config-map");
    const merged = { ...this.defaults, ...configMap };
    if (!merged.storageURL) return null;
    return {
      settings: resolveSettings({ parameters: {}, configMap: merged }),
      secrets: this.secrets(csiSecrets),
    };
  }

  /** Defaults (+ default ConfigMap) without credentials from CSI secrets; `null` without a storageURL. */
  homeAccess(): Promise<ObjectStoreAccess | null> {
    return this.legacyAccess({});
  }

  /** CSI secrets (provisioner secrets) over the controller's environment. */
  secrets(csiSecrets: Record<string, string>): SecretValues {
    const env: SecretValues = {
      awsAccessKeyId: this.#env(ENV_AWS_ACCESS_KEY_ID),
      awsSecretAccessKey: this.#env(ENV_AWS_SECRET_ACCESS_KEY),
      awsSessionToken: this.#env(ENV_AWS_SESSION_TOKEN),
    };
    const fromCsi = secretValuesFromCsiSecrets(csiSecrets);
    // CSI credentials replace the environment's as a pair, never mix with them.
    const values: SecretValues = fromCsi.awsAccessKeyId ? { ...fromCsi } : { ...env, ...fromCsi };
    for (const k of Object.keys(values) as (keyof SecretValues)[]) {
      if (!values[k]) delete values[k];
    }
    checkSecretValues(values);
    return values;
  }

  async #configMap(
    name: string | undefined,
    where: string,
  ): Promise<Record<string, string> | undefined> {
    if (!name) return undefined;
    const data = await this.configMaps.get(name);
    if (!data) {
      throw new SettingsError(
        `ConfigMap "${name}" (${where}) does not exist; create it in the driver namespace ` +
          `(standalone: add a [configMaps.${name}] table to the settings file)`,
        "precondition",
      );
    }
    return data;
  }
}
