/**
 * Secret plumbing for a volume: which Secret keys hold what, which
 * environment variables carry the values to ZeroFS, and how CSI and
 * Kubernetes Secrets become {@linkcode SecretValues}. Values are never
 * logged, put in errors, state files or argv.
 *
 * @module
 */

import { SettingsError } from "./types.ts";

/** Secret values for one volume. Never logged, never in errors, argv or state files. */
export interface SecretValues {
  encryptionPassword?: string;
  awsAccessKeyId?: string;
  awsSecretAccessKey?: string;
  awsSessionToken?: string;
}

/** Environment variable that carries the encryption password to ZeroFS (`${…}` in config.toml). */
export const ENV_ENCRYPTION_PASSWORD = "ZEROFS_ENCRYPTION_PASSWORD";
/** Environment variable that carries the AWS access key ID to ZeroFS. */
export const ENV_AWS_ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID";
/** Environment variable that carries the AWS secret access key to ZeroFS. */
export const ENV_AWS_SECRET_ACCESS_KEY = "AWS_SECRET_ACCESS_KEY";
/** Environment variable that carries the AWS session token to ZeroFS. */
export const ENV_AWS_SESSION_TOKEN = "AWS_SESSION_TOKEN";

/** Which environment variable carries which {@linkcode SecretValues} field. */
export const SECRET_ENV_NAMES: Readonly<Record<keyof SecretValues, string>> = {
  encryptionPassword: ENV_ENCRYPTION_PASSWORD,
  awsAccessKeyId: ENV_AWS_ACCESS_KEY_ID,
  awsSecretAccessKey: ENV_AWS_SECRET_ACCESS_KEY,
  awsSessionToken: ENV_AWS_SESSION_TOKEN,
};

/** Key in the Secret named by `encryptionPasswordSecretName` (as in the original driver). */
export const ENCRYPTION_PASSWORD_SECRET_KEY = "password";

/**
 * Keys in the Secret named by `awsCredentialsSecretName`, in lookup order
 * (the original driver reads `AWS_ACCESS_KEY_ID`, falling back to `username`,
 * and `AWS_SECRET_ACCESS_KEY`, falling back to `password`).
 */
export const AWS_CREDENTIALS_SECRET_KEYS = {
  accessKeyId: ["AWS_ACCESS_KEY_ID", "username"],
  secretAccessKey: ["AWS_SECRET_ACCESS_KEY", "password"],
  sessionToken: ["AWS_SESSION_TOKEN"],
} as const;

/** ZeroFS refuses shorter passwords. */
export const MIN_ENCRYPTION_PASSWORD_CHARS = 8;

/**
 * The environment that hands `values` to ZeroFS: only fields that are set.
 *
 * @example
 * ```ts
 * secretEnv({ encryptionPassword: "s3cr3t-pass" }); // → { ZEROFS_ENCRYPTION_PASSWORD: "s3cr3t-pass" }
 * ```
 */
export function secretEnv(values: SecretValues): Record<string, string> {
  const env: Record<string, string> = {};
  for (const field of Object.keys(SECRET_ENV_NAMES) as (keyof SecretValues)[]) {
    const value = values[field];
    if (value !== undefined && value !== "") env[SECRET_ENV_NAMES[field]] = value;
  }
  return env;
}

/**
 * Keys accepted in CSI `secrets` maps (provisioner / node-stage secrets
 * referenced by `csi.storage.k8s.io/*-secret-name`). Both our names and the
 * original driver's Secret key names are accepted.
 */
export const CSI_SECRET_KEYS: Readonly<Record<string, keyof SecretValues>> = {
  encryptionPassword: "encryptionPassword",
  password: "encryptionPassword",
  awsAccessKeyID: "awsAccessKeyId",
  AWS_ACCESS_KEY_ID: "awsAccessKeyId",
  awsSecretAccessKey: "awsSecretAccessKey",
  AWS_SECRET_ACCESS_KEY: "awsSecretAccessKey",
  awsSessionToken: "awsSessionToken",
  AWS_SESSION_TOKEN: "awsSessionToken",
};

/**
 * Parse a CSI `secrets` map into {@linkcode SecretValues}. Unknown keys and
 * two keys for the same value are {@linkcode SettingsError}s naming the key —
 * never the value.
 */
export function secretValuesFromCsiSecrets(secrets: Record<string, string>): SecretValues {
  const values: SecretValues = {};
  const seenFrom: Partial<Record<keyof SecretValues, string>> = {};
  for (const [key, value] of Object.entries(secrets)) {
    const field = CSI_SECRET_KEYS[key];
    if (!field) {
      throw new SettingsError(
        `unknown key ${JSON.stringify(key)} in the CSI secrets; allowed keys: ${
          Object.keys(CSI_SECRET_KEYS).sort().join(", ")
        }`,
      );
    }
    if (seenFrom[field]) {
      throw new SettingsError(
        `CSI secrets set ${field} twice (keys "${seenFrom[field]}" and "${key}"); keep one`,
      );
    }
    seenFrom[field] = key;
    values[field] = value;
  }
  checkSecretValues(values);
  return values;
}

/**
 * True for a password nobody should encrypt a volume with: shorter than
 * {@linkcode MIN_ENCRYPTION_PASSWORD_CHARS}, or still holding the
 * placeholder word of the example manifests (`CHANGEME-encryption-password`).
 */
export function isPlaceholderPassword(password: string): boolean {
  return password.length < MIN_ENCRYPTION_PASSWORD_CHARS ||
    password.toLowerCase().includes("changeme");
}

/** Throws when present values cannot work (short password, half a key pair). Never quotes a value. */
export function checkSecretValues(values: SecretValues): void {
  const password = values.encryptionPassword;
  if (password !== undefined && isPlaceholderPassword(password)) {
    throw new SettingsError(
      `the encryption password is a placeholder or too short: it needs at least ` +
        `${MIN_ENCRYPTION_PASSWORD_CHARS} characters and must not contain "changeme" in any case ` +
        `(the example manifests ship one); put a real password in the Secret`,
    );
  }
  if (Boolean(values.awsAccessKeyId) !== Boolean(values.awsSecretAccessKey)) {
    throw new SettingsError(
      "AWS credentials are incomplete: an access key ID and a secret access key are both needed; update the Secret",
    );
  }
}

/**
 * Read {@linkcode SecretValues} out of Kubernetes Secret data (already
 * base64-decoded): the encryption-password Secret and the AWS-credentials
 * Secret, using the original driver's key names.
 */
export function secretValuesFromKubernetesSecrets(
  encryptionSecret: Record<string, string> | undefined,
  awsSecret: Record<string, string> | undefined,
): SecretValues {
  const first = (data: Record<string, string> | undefined, keys: readonly string[]) =>
    keys.map((k) => data?.[k]).find((v) => v !== undefined && v !== "");
  const values: SecretValues = {
    encryptionPassword: encryptionSecret?.[ENCRYPTION_PASSWORD_SECRET_KEY] || undefined,
    awsAccessKeyId: first(awsSecret, AWS_CREDENTIALS_SECRET_KEYS.accessKeyId),
    awsSecretAccessKey: first(awsSecret, AWS_CREDENTIALS_SECRET_KEYS.secretAccessKey),
    awsSessionToken: first(awsSecret, AWS_CREDENTIALS_SECRET_KEYS.sessionToken),
  };
  for (const k of Object.keys(values) as (keyof SecretValues)[]) {
    if (values[k] === undefined) delete values[k];
  }
  checkSecretValues(values);
  return values;
}
