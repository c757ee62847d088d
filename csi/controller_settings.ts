/**
 * Where the controller finds a volume's object-store settings and
 * credentials: the StorageClass parameters it recorded at CreateVolume, the
 * ConfigMap they name (settings file, or the driver namespace through the
 * Kubernetes API), the controller's defaults (settings file), and AWS
 * credentials from, in order: the CSI provisioner secrets, the Secret named
 * by `awsCredentialsSecretName` (API only), the controller's environment,
 * and finally the AWS SDK's default chain.
 *
 * @module
 */

import { rememberSecretValues } from "./redact.ts";
import {
  applyPin,
  AWS_CREDENTIALS_SECRET_KEYS,
  checkSecretValues,
  ENV_AWS_ACCESS_KEY_ID,
  ENV_AWS_SECRET_ACCESS_KEY,
  ENV_AWS_SESSION_TOKEN,
  type ObjectStoreAccess,
  parseSettings,
  type PinDisagreement,
  readConfigMapData,
  readSecretData,
  resolveSettings,
  type SecretValues,
  secretValuesFromCsiSecrets,
  secretValuesFromKubernetesSecrets,
  SettingsError,
  type VolumePin,
  type VolumeSettings,
} from "../zerofs/mod.ts";
import type { KubeClient } from "../kube/mod.ts";
import { parseSettingsFile, type SettingsFile } from "./node/mod.ts";

/** Reads ConfigMap data by name (driver namespace); `undefined` when it does not exist. */
export interface ConfigMapSource {
  get(name: string): Promise<Record<string, string> | undefined>;
}

/** Reads Secret data (decoded) by name (driver namespace); `undefined` when it does not exist. */
export interface SecretSource {
  get(name: string): Promise<Record<string, string> | undefined>;
}

/** ConfigMaps of one namespace, read through the Kubernetes API on every call. */
export class KubeConfigMapSource implements ConfigMapSource {
  constructor(readonly kube: KubeClient, readonly namespace: string) {}
  get(name: string): Promise<Record<string, string> | undefined> {
    return readConfigMapData(this.kube, this.namespace, name);
  }
}

/** Secrets of one namespace, read through the Kubernetes API on every call (never cached). */
export class KubeSecretSource implements SecretSource {
  constructor(readonly kube: KubeClient, readonly namespace: string) {}
  get(name: string): Promise<Record<string, string> | undefined> {
    return readSecretData(this.kube, this.namespace, name);
  }
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
  /** The settings file, for messages. */
  settingsFile?: string;
  configMaps?: ConfigMapSource;
  /**
   * Secrets named by `awsCredentialsSecretName`; absent (standalone) → that
   * setting is not read by the controller and credentials come from the
   * CSI secrets or the environment.
   */
  secrets?: SecretSource;
  /** Where {@linkcode configMaps} and {@linkcode secrets} live, for messages. */
  namespace?: string;
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
 * are read per call (CSI secrets, the settings' Secret, the environment) and
 * handed straight to the object-store client.
 */
export class ControllerSettings {
  readonly configMaps: ConfigMapSource;
  readonly secretSource?: SecretSource;
  readonly namespace?: string;
  readonly defaultConfigMapName?: string;
  readonly #env: (name: string) => string | undefined;
  readonly #defaults: Partial<VolumeSettings>;

  constructor(opts: ControllerSettingsOptions = {}) {
    // Fail at start on a malformed defaults table, not on the first volume.
    this.#defaults = parseSettings(opts.defaults ?? {}, {
      kind: "settings file",
      path: opts.settingsFile,
    });
    this.configMaps = opts.configMaps ?? new FileConfigMapSource({});
    this.secretSource = opts.secrets;
    this.namespace = opts.namespace;
    this.defaultConfigMapName = opts.defaultConfigMapName;
    this.#env = opts.env ?? ((n) => Deno.env.get(n));
  }

  /**
   * Load `--settings-file` (same TOML format as the node's). A missing file
   * is an error naming the flag. With `opts.configMaps` (the API) the file
   * gives only defaults: `[configMaps.*]` tables in it are an error, not
   * silently shadowed.
   */
  static async load(
    path: string,
    opts: Omit<ControllerSettingsOptions, "defaults"> = {},
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
    const tables = Object.keys(file.configMaps);
    if (opts.configMaps && tables.length > 0) {
      throw new SettingsError(
        `--settings-file ${path} has [configMaps.${tables[0]}] but ConfigMaps are read from the ` +
          `Kubernetes API; create them in the driver namespace and keep only defaults in the ` +
          `file, or pass --config-source file`,
        "precondition",
      );
    }
    return new ControllerSettings({
      ...opts,
      defaults: file.defaults,
      settingsFile: path,
      configMaps: opts.configMaps ?? new FileConfigMapSource(file.configMaps),
    });
  }

  /**
   * Settings and credentials of a volume created with `parameters`
   * (StorageClass parameters as recorded). Missing ConfigMap →
   * FAILED_PRECONDITION; no storageURL anywhere → the original driver's
   * default, `s3://zerofs` (zerofs/settings.ts DEFAULT_STORAGE_URL).
   */
  async access(
    parameters: Record<string, string>,
    csiSecrets: Record<string, string> = {},
  ): Promise<ObjectStoreAccess> {
    const settings = await this.resolve(parameters);
    return { settings, secrets: await this.secrets(csiSecrets, settings) };
  }

  /** What the settings say now for a volume created with `parameters` (no credentials read). */
  async resolve(parameters: Record<string, string>): Promise<VolumeSettings> {
    const configMapName = parameters.configMapName;
    const configMap = await this.#configMap(configMapName, "StorageClass parameter");
    return resolveSettings({ parameters, configMap, configMapName, defaults: this.#defaults });
  }

  /**
   * Like {@linkcode access}, with the volume's `pin` over the settings (the
   * credentials come from the pinned Secret), and every pinned key on which
   * the settings now disagree.
   */
  async pinnedAccess(
    parameters: Record<string, string>,
    pin: VolumePin,
    csiSecrets: Record<string, string> = {},
  ): Promise<{ access: ObjectStoreAccess; disagreements: PinDisagreement[] }> {
    const { settings, disagreements } = applyPin(await this.resolve(parameters), pin);
    return {
      access: { settings, secrets: await this.secrets(csiSecrets, settings) },
      disagreements,
    };
  }

  /**
   * Settings for a volume without a record: the default ConfigMap (flag)
   * over the file's defaults, or `null` when they name no storageURL.
   */
  async legacyAccess(csiSecrets: Record<string, string> = {}): Promise<ObjectStoreAccess | null> {
    const configMapName = this.defaultConfigMapName;
    const configMap = await this.#configMap(configMapName, "--default-config-map");
    if (!configMap?.storageURL && !this.#defaults.storageURL) return null;
    const settings = resolveSettings({
      parameters: {},
      configMap,
      configMapName,
      defaults: this.#defaults,
    });
    return { settings, secrets: await this.secrets(csiSecrets, settings) };
  }

  /** Defaults (+ default ConfigMap) without credentials from CSI secrets; `null` without a storageURL. */
  homeAccess(): Promise<ObjectStoreAccess | null> {
    return this.legacyAccess({});
  }

  /**
   * AWS credentials for an object-store call, first source with an access
   * key wins, as a whole (an access key and its secret never come from two sources):
   * 1. the CSI secrets (provisioner secrets of the StorageClass);
   * 2. the Secret named by `settings.awsCredentialsSecretName`, when this
   *    controller reads Secrets (API mode) — named but missing, or without
   *    an access key, is FAILED_PRECONDITION naming it;
   * 3. the controller's environment (`AWS_ACCESS_KEY_ID`, …);
   * 4. none: the S3 client falls back to the AWS SDK's default chain.
   * Errors name sources and keys, never values.
   */
  async secrets(
    csiSecrets: Record<string, string>,
    settings?: Pick<VolumeSettings, "awsCredentialsSecretName">,
  ): Promise<SecretValues> {
    const fromCsi = secretValuesFromCsiSecrets(csiSecrets);
    let base: SecretValues;
    if (fromCsi.awsAccessKeyId) base = {};
    else {
      base = await this.#fromSecret(settings?.awsCredentialsSecretName) ?? {
        awsAccessKeyId: this.#env(ENV_AWS_ACCESS_KEY_ID),
        awsSecretAccessKey: this.#env(ENV_AWS_SECRET_ACCESS_KEY),
        awsSessionToken: this.#env(ENV_AWS_SESSION_TOKEN),
      };
    }
    const values: SecretValues = { ...base, ...fromCsi };
    for (const k of Object.keys(values) as (keyof SecretValues)[]) {
      if (!values[k]) delete values[k];
    }
    rememberSecretValues(Object.values(values));
    checkSecretValues(values);
    return values;
  }

  /** The AWS credentials in Secret `name`; `undefined` when there is no Secret to read. */
  async #fromSecret(name: string | undefined): Promise<SecretValues | undefined> {
    if (!name || !this.secretSource) return undefined;
    const where = `Secret "${name}" (awsCredentialsSecretName) in namespace "${
      this.namespace ?? "(driver namespace)"
    }"`;
    const data = await this.secretSource.get(name);
    if (!data) {
      throw new SettingsError(
        `${where} does not exist; create it with keys ` +
          `${AWS_CREDENTIALS_SECRET_KEYS.accessKeyId[0]} and ` +
          `${AWS_CREDENTIALS_SECRET_KEYS.secretAccessKey[0]}, or fix the ConfigMap`,
        "precondition",
      );
    }
    let values: SecretValues;
    try {
      values = secretValuesFromKubernetesSecrets(undefined, data);
    } catch (e) {
      throw new SettingsError(`${where}: ${(e as Error).message}`, "precondition");
    }
    if (!values.awsAccessKeyId) {
      throw new SettingsError(
        `${where} has none of the keys ${AWS_CREDENTIALS_SECRET_KEYS.accessKeyId.join(", ")}; ` +
          `add the access key ID (and ${AWS_CREDENTIALS_SECRET_KEYS.secretAccessKey.join(" or ")})`,
        "precondition",
      );
    }
    return values;
  }

  async #configMap(
    name: string | undefined,
    where: string,
  ): Promise<Record<string, string> | undefined> {
    if (!name) return undefined;
    const data = await this.configMaps.get(name);
    if (!data) {
      const fix = this.namespace === undefined
        ? `create it in the driver namespace (standalone: add a [configMaps.${name}] table to ` +
          `the settings file)`
        : `create it in namespace "${this.namespace}", or fix the ${where}`;
      throw new SettingsError(
        `ConfigMap "${name}" (${where}) does not exist; ${fix}`,
        "precondition",
      );
    }
    return data;
  }
}
