import assert from "node:assert/strict";
import { DEFAULT_CAPACITY_BYTES, parseStageRequest } from "./requests.ts";

const stage = (volume_context: Record<string, string>) =>
  parseStageRequest({
    volume_id: "pvc-1",
    staging_target_path: "/var/lib/kubelet/staging/pvc-1",
    volume_capability: { mount: { fs_type: "" }, access_mode: { mode: "SINGLE_NODE_WRITER" } },
    volume_context,
  }, ["ext4", "xfs", "btrfs"]);

Deno.test("parseStageRequest reads the original driver's volume context", () => {
  // What the original driver's CreateVolume returned: the StorageClass parameters
  // plus capacity_bytes (jrcichra/zerofs-csi-driver pkg/csi/controller.go).
  const original = stage({
    filesystem: "btrfs",
    configMapName: "zerofs-btrfs-config",
    capacity_bytes: String(10 * 1024 ** 3),
  });
  assert.equal(original.capacityBytes, 10 * 1024 ** 3);
  assert.equal(original.fsType, "btrfs");
  // Ours wins when both are there; the original's "0" (no capacity range) means unknown.
  assert.equal(stage({ capacityBytes: "8192", capacity_bytes: "4096" }).capacityBytes, 8192);
  assert.equal(stage({ capacity_bytes: "0" }).capacityBytes, DEFAULT_CAPACITY_BYTES);
});
