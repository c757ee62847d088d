/**
 * Drives the real controller the way external-provisioner, external-attacher
 * and external-resizer do, and checks every response field they read; its
 * volumes live on a real S3 server (MinIO), so DeleteVolume must really
 * remove the volume's objects and its record.
 */

import assert from "node:assert/strict";
import { startS3 } from "../fixtures/s3.ts";
import { listBucketKeys } from "../helpers/bucket.ts";
import {
  BUCKET,
  putObjects,
  rawClient,
  startS3Controller,
  volumeKeys,
  writeSettingsFile,
} from "../helpers/controller_s3.ts";
import { makeTestDir, type RunningDriver } from "../helpers/driver.ts";

const GiB = 1024 ** 3;

Deno.test("sidecar conformance: provisioner → attacher → resizer → attacher → provisioner", async () => {
  const dir = await makeTestDir();
  const s3 = await startS3();
  let driver: RunningDriver | undefined;
  try {
    await s3.createBucket(BUCKET);
    const settingsFile = await writeSettingsFile(dir, s3);
    driver = await startS3Controller({ dir, stateDir: `${dir}/state`, settingsFile, s3 });
    const { identity, controller } = driver.client;
    // All three sidecars: driver name and controller capabilities at start.
    const info = await identity.GetPluginInfo();
    assert.match(info.name, /^[a-z0-9A-Z]([a-z0-9A-Z.-]{0,61}[a-z0-9A-Z])?$/);
    assert.ok(info.vendor_version);
    const plugin = await identity.GetPluginCapabilities();
    const hasController = plugin.capabilities.some((c: { service?: { type: string } }) =>
      c.service?.type === "CONTROLLER_SERVICE"
    );
    assert.ok(hasController, "provisioner requires CONTROLLER_SERVICE");
    const expansion = plugin.capabilities.find((c: { volume_expansion?: unknown }) =>
      c.volume_expansion
    );
    assert.equal(expansion.volume_expansion.type, "OFFLINE", "resizer reads the expansion mode");
    const ctrl = await controller.ControllerGetCapabilities();
    const rpcs = new Set(ctrl.capabilities.map((c: { rpc: { type: string } }) => c.rpc.type));
    for (const needed of ["CREATE_DELETE_VOLUME", "PUBLISH_UNPUBLISH_VOLUME", "EXPAND_VOLUME"]) {
      assert.ok(rpcs.has(needed), needed);
    }

    // external-provisioner with --extra-create-metadata and a StorageClass fstype.
    const pvName = "pvc-3f0c1d2e-4b5a-6978-8a9b-0c1d2e3f4a5b";
    const cap = {
      mount: { fs_type: "ext4", mount_flags: [] },
      access_mode: { mode: "SINGLE_NODE_WRITER" },
    };
    const created = await controller.CreateVolume({
      name: pvName,
      capacity_range: { required_bytes: GiB },
      volume_capabilities: [cap],
      parameters: {
        "csi.storage.k8s.io/fstype": "ext4",
        "csi.storage.k8s.io/pvc/name": "data",
        "csi.storage.k8s.io/pvc/namespace": "default",
        "csi.storage.k8s.io/pv/name": pvName,
        deletePolicy: "delete",
      },
    });
    const vol = created.volume;
    assert.equal(vol.volume_id, pvName, "PV spec.csi.volumeHandle");
    assert.ok(vol.capacity_bytes >= GiB, "PV capacity must cover the request");
    assert.equal(vol.volume_context["csi.storage.k8s.io/pvc/name"], "data");
    assert.equal(vol.volume_context.fsType, "ext4");
    assert.equal(vol.volume_context.capacityBytes, String(GiB));
    assert.deepEqual(vol.accessible_topology, [], "no topology without the capability");
    assert.equal(vol.content_source, null);
    // The record goes to the object store next to the volumes (settings: s3://volumes/base).
    const record = `base/.zerofs-csi-volumes/${pvName}.json`;
    assert.deepEqual(await listBucketKeys(s3, BUCKET, record), [record], "record in S3");

    // external-attacher: publish with the PV's context, store publish_context.
    const published = await controller.ControllerPublishVolume({
      volume_id: pvName,
      node_id: "worker-1",
      volume_capability: cap,
      readonly: false,
      volume_context: vol.volume_context,
    });
    assert.equal(typeof published.publish_context, "object");
    assert.equal(published.publish_context.readonly, "false");

    // Pre-provisioned PV path: ValidateVolumeCapabilities.
    const validated = await controller.ValidateVolumeCapabilities({
      volume_id: pvName,
      volume_context: vol.volume_context,
      volume_capabilities: [cap],
    });
    assert.ok(validated.confirmed, validated.message);
    assert.deepEqual(validated.confirmed.volume_context, vol.volume_context);

    // external-resizer (offline): refused while attached (FAILED_PRECONDITION: the resizer
    // retries); after the detach it expands, then the kubelet does NodeExpandVolume.
    const expand = () =>
      controller.ControllerExpandVolume({
        volume_id: pvName,
        capacity_range: { required_bytes: 3 * GiB },
        volume_capability: cap,
      });
    await assert.rejects(expand(), /FAILED_PRECONDITION.*published to node\(s\) worker-1/);
    await controller.ControllerUnpublishVolume({ volume_id: pvName, node_id: "worker-1" });
    const expanded = await expand();
    assert.equal(expanded.capacity_bytes, 3 * GiB);
    assert.equal(expanded.node_expansion_required, true);

    // What ZeroFS writes while the volume is in use: its objects under the volume's prefix.
    // A neighbour whose name starts with the volume's must survive the delete.
    const client = rawClient(s3);
    try {
      await putObjects(client, [
        ...volumeKeys(`base/${pvName}/`, 40),
        `base/${pvName}-b/wal/000000.sst`,
      ]);
    } finally {
      client.destroy();
    }
    assert.equal((await listBucketKeys(s3, BUCKET, `base/${pvName}/`)).length, 40);

    // external-attacher on detach (again: idempotent); provisioner on PVC delete (twice: retries).
    assert.deepEqual(
      await controller.ControllerUnpublishVolume({ volume_id: pvName, node_id: "worker-1" }),
      {},
    );
    assert.deepEqual(await controller.DeleteVolume({ volume_id: pvName }), {});
    assert.deepEqual(await listBucketKeys(s3, BUCKET, `base/${pvName}/`), [], "objects deleted");
    assert.deepEqual(await listBucketKeys(s3, BUCKET, record), [], "record deleted");
    assert.deepEqual(
      await listBucketKeys(s3, BUCKET, `base/${pvName}-b/`),
      [`base/${pvName}-b/wal/000000.sst`],
      "the neighbour stays",
    );
    assert.deepEqual(await controller.DeleteVolume({ volume_id: pvName }), {});
  } finally {
    await driver?.stop();
    await s3.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
