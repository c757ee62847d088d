import assert from "node:assert/strict";
import { SettingsError } from "../zerofs/mod.ts";
import { parametersOfContext, resolveContextSettings, volumeContext } from "./parameters.ts";

const pin = { storageURL: "s3://b/site-a", awsEndpoint: "" };

Deno.test("parametersOfContext keeps the StorageClass parameters, drops what others added", () => {
  const params = { configMapName: "zerofs", cacheDiskSizeGB: "2", filesystem: "xfs" };
  const context = {
    ...volumeContext(params, { capacityBytes: 4096, fsType: "xfs", pin }),
    "storage.kubernetes.io/csiProvisionerIdentity": "1700000000000-8081-zerofs.csi.driver",
    "csi.storage.k8s.io/pvc/name": "data",
    capacity_bytes: "4096",
  };
  assert.deepEqual(parametersOfContext(context), params);
});

Deno.test("resolveContextSettings refuses an unknown volume-context key, naming it", () => {
  const context = { cacheDiskSizeGB: "2", fsType: "ext4", "zerofs.csi/storageURL": "s3://b/x" };
  assert.equal(resolveContextSettings(context, undefined).cacheDiskSizeGB, 2);
  assert.throws(
    () => resolveContextSettings({ ...context, cacheSizeGB: "2" }, undefined),
    (e) =>
      e instanceof SettingsError &&
      /^unknown volume_context key "cacheSizeGB"; accepted keys: .*cacheDiskSizeGB/.test(e.message),
  );
  assert.throws(
    () => resolveContextSettings({ configMapName: "cm" }, { cacheSizeGB: "2" }),
    (e) =>
      e instanceof SettingsError &&
      e.message.startsWith(`unknown ConfigMap key "cacheSizeGB" (ConfigMap "cm")`),
  );
});
