import assert from "node:assert/strict";
import { DEFAULT_CAPACITY_BYTES } from "../capacity.ts";
import { parseStageRequest } from "./requests.ts";

const stage = (volume_context: Record<string, string>) =>
  parseStageRequest({
    volume_id: "pvc-1",
    staging_target_path: "/var/lib/kubelet/staging/pvc-1",
    volume_capability: { mount: { fs_type: "" }, access_mode: { mode: "SINGLE_NODE_WRITER" } },
    volume_context,
  }, { allowedFsTypes: ["ext4", "xfs", "btrfs"], kubeletDir: "/var/lib/kubelet" });

Deno.test("parseStageRequest reads the original driver's volume context", async () => {
  // What the original driver's CreateVolume returned: the StorageClass parameters
  // plus capacity_bytes (jrcichra/zerofs-csi-driver pkg/csi/controller.go).
  const original = await stage({
    filesystem: "btrfs",
    configMapName: "zerofs-btrfs-config",
    capacity_bytes: String(10 * 1024 ** 3),
  });
  assert.equal(original.capacityBytes, 10 * 1024 ** 3);
  assert.equal(original.fsType, "btrfs");
  // Ours wins when both are there; the original's "0" (no capacity range) means unknown.
  assert.equal(
    (await stage({ capacityBytes: "8192", capacity_bytes: "4096" })).capacityBytes,
    8192,
  );
  assert.equal((await stage({ capacity_bytes: "0" })).capacityBytes, DEFAULT_CAPACITY_BYTES);
});

Deno.test("parseStageRequest: the pin comes from the volume context over the publish context", async () => {
  const withPublish = (
    volume_context: Record<string, string>,
    publish_context: Record<string, string>,
  ) =>
    parseStageRequest({
      volume_id: "pvc-1",
      staging_target_path: "/var/lib/kubelet/staging/pvc-1",
      volume_capability: { mount: { fs_type: "" }, access_mode: { mode: "SINGLE_NODE_WRITER" } },
      volume_context,
      publish_context,
    }, { allowedFsTypes: ["ext4"], kubeletDir: "/var/lib/kubelet" });
  assert.equal((await stage({ fsType: "ext4" })).pin, null, "an unpinned volume");
  assert.deepEqual(
    (await withPublish(
      { "zerofs.csi/storageURL": "s3://b/a" },
      { "zerofs.csi/storageURL": "s3://b/z", "zerofs.csi/awsEndpoint": "http://m:9000" },
    )).pin,
    { storageURL: "s3://b/a", awsEndpoint: "http://m:9000" },
  );
  assert.deepEqual((await withPublish({}, { "zerofs.csi/storageURL": "s3://b/z" })).pin, {
    storageURL: "s3://b/z",
  });
  await assert.rejects(
    () => stage({ "zerofs.csi/awsDefaultRegion": "no spaces allowed" }),
    /volume_context key "zerofs\.csi\/awsDefaultRegion"/,
  );
  await assert.rejects(
    () => withPublish({}, { "zerofs.csi/bucket": "b" }),
    /unknown publish_context key "zerofs\.csi\/bucket"/,
  );
});
