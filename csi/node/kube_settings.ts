/**
 * Settings for the node agent in a cluster (pod runner): the ConfigMap named
 * by the volume context's `configMapName`, read from the driver namespace
 * through the Kubernetes API, under the StorageClass parameters.
 *
 * No secret values: in pod mode the agent never reads a Secret. The ZeroFS
 * pod gets the Secrets the settings name through `secretKeyRef`.
 *
 * @module
 */

import {
  readConfigMapData,
  type SecretValues,
  SettingsError,
  type VolumeSettings,
} from "../../zerofs/mod.ts";
import type { KubeClient } from "../../kube/mod.ts";
import { resolveContextSettings } from "../parameters.ts";
import type { SettingsProvider } from "./context.ts";

/** Reads each volume's ConfigMap from `namespace` at stage time. */
export class KubeSettingsProvider implements SettingsProvider {
  constructor(readonly kube: KubeClient, readonly namespace: string) {}

  async resolve(
    volumeContext: Record<string, string>,
    csiSecrets: Record<string, string>,
  ): Promise<{ settings: VolumeSettings; secrets: SecretValues }> {
    const keys = Object.keys(csiSecrets);
    if (keys.length > 0) {
      throw new SettingsError(
        `node-stage secrets (keys ${keys.sort().join(", ")}) are not used by the pod runner: ` +
          `remove csi.storage.k8s.io/node-stage-secret-* from the StorageClass and name the ` +
          `Secrets in the ConfigMap (encryptionPasswordSecretName, awsCredentialsSecretName)`,
      );
    }
    const name = volumeContext.configMapName;
    const configMap = name ? await this.#read(name) : undefined;
    const settings = resolveContextSettings(volumeContext, configMap);
    return { settings, secrets: {} };
  }

  async #read(name: string): Promise<Record<string, string>> {
    const data = await readConfigMapData(this.kube, this.namespace, name);
    if (!data) {
      throw new SettingsError(
        `ConfigMap "${name}" (StorageClass parameter configMapName) does not exist in ` +
          `namespace "${this.namespace}"; create it or fix the StorageClass`,
        "precondition",
      );
    }
    return data;
  }
}
