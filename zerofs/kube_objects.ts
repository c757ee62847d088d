/**
 * Reading the two kinds of object the driver's settings live in — ConfigMaps
 * and Secrets in the driver namespace — through the Kubernetes API.
 *
 * Both answer `undefined` when the object does not exist (the caller knows
 * which setting named it and says so); any other failure is an error naming
 * the object and the API's reason. Secret values never appear in an error.
 *
 * @module
 */

import { apiErrorMessage, apiStatusCode, type KubeClient } from "../kube/mod.ts";
import { SettingsError } from "./types.ts";

/**
 * The `data` of ConfigMap `namespace/name`; `undefined` when it does not exist.
 *
 * @example
 * ```ts
 * const data = await readConfigMapData(kube, "zerofs", "zerofs-default");
 * if (!data) throw new Error("create ConfigMap zerofs-default");
 * ```
 */
export async function readConfigMapData(
  kube: KubeClient,
  namespace: string,
  name: string,
): Promise<Record<string, string> | undefined> {
  try {
    const cm = await kube.core.readNamespacedConfigMap({ name, namespace });
    return { ...(cm.data ?? {}) };
  } catch (e) {
    if (apiStatusCode(e) === 404) return undefined;
    throw readError("ConfigMap", namespace, name, e);
  }
}

/**
 * The `data` of Secret `namespace/name`, base64-decoded as UTF-8;
 * `undefined` when it does not exist.
 *
 * @example
 * ```ts
 * const data = await readSecretData(kube, "zerofs", "zerofs-aws-credentials");
 * const keyId = data?.AWS_ACCESS_KEY_ID;
 * ```
 */
export async function readSecretData(
  kube: KubeClient,
  namespace: string,
  name: string,
): Promise<Record<string, string> | undefined> {
  let encoded: Record<string, string>;
  try {
    const secret = await kube.core.readNamespacedSecret({ name, namespace });
    encoded = secret.data ?? {};
  } catch (e) {
    if (apiStatusCode(e) === 404) return undefined;
    throw readError("Secret", namespace, name, e);
  }
  const data: Record<string, string> = {};
  for (const [key, value] of Object.entries(encoded)) {
    data[key] = decodeBase64(value, () =>
      new SettingsError(
        `Secret "${name}" in namespace "${namespace}": the value of key "${key}" is not valid ` +
          `base64; recreate the Secret`,
        "precondition",
      ));
  }
  return data;
}

/** Decode standard base64 into a UTF-8 string; `fail()` (never quoting the value) otherwise. */
function decodeBase64(value: string, fail: () => Error): string {
  try {
    const binary = atob(value);
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw fail();
  }
}

/**
 * A failed read: 403 is the driver's RBAC (FAILED_PRECONDITION, say what to
 * grant); anything else (API down, 5xx) is a plain error worth retrying.
 */
function readError(kind: "ConfigMap" | "Secret", namespace: string, name: string, e: unknown) {
  const what = `Cannot read ${kind} "${name}" in namespace "${namespace}": ${apiErrorMessage(e)}`;
  if (apiStatusCode(e) === 403) {
    const resource = kind === "ConfigMap" ? "configmaps" : "secrets";
    return new SettingsError(
      `${what}; the driver's ServiceAccount needs "get" on ${resource} in "${namespace}" ` +
        `(apply the driver's RBAC manifests)`,
      "precondition",
    );
  }
  return new Error(what);
}
