/**
 * Bad node requests: exact gRPC codes, and nothing changed on the host (no
 * state directory, process, mount or path created).
 *
 * Run as root: `deno test -A tests/integration/node_bad_input_test.ts`.
 */

import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import {
  assertNothingLeft,
  readVolumeState,
  rejectedWithoutTrace,
  volumeProcesses,
  withNodeEnvironment,
} from "../helpers/node_env.ts";
import { capabilityFor, createVolume, nodeRequests } from "../helpers/volume_steps.ts";

const GiB = 1024 ** 3;

Deno.test("node bad input: invalid requests are INVALID_ARGUMENT and touch nothing", async () => {
  await withNodeEnvironment(async (env) => {
    const node = env.node.client.node;
    const volume = await createVolume(env.controller.client, {
      name: "pvc-bad",
      kind: "ext4",
      sizeBytes: GiB,
    });
    const req = nodeRequests(volume, { kind: "ext4", kubeletDir: env.kubeletDir });
    const stage = (over: Record<string, unknown>) => () =>
      node.NodeStageVolume({ ...req.stage, ...over });
    const mountCap = (fs_type: string, mount_flags: string[] = []) => ({
      mount: { fs_type, mount_flags },
      access_mode: { mode: "SINGLE_NODE_WRITER" },
    });
    const invalid: [string, () => Promise<unknown>][] = [
      ["relative staging path", stage({ staging_target_path: "kubelet/staging/pvc-bad" })],
      ["staging path with ..", stage({ staging_target_path: `${env.kubeletDir}/../escape` })],
      ["volume id with /", stage({ volume_id: "pvc/bad" })],
      ["volume id with ..", stage({ volume_id: "pvc..bad" })],
      ["volume id ..", stage({ volume_id: ".." })],
      ["unknown fs type", stage({ volume_capability: mountCap("zfs") })],
      ["mount flags rw,suid", stage({ volume_capability: mountCap("ext4", ["rw,suid"]) })],
      ["mount flag suid", stage({ volume_capability: mountCap("ext4", ["suid"]) })],
      ["mount flag bind", stage({ volume_capability: mountCap("ext4", ["bind"]) })],
      [
        "mount flag journal_path (another device)",
        stage({ volume_capability: mountCap("ext4", ["journal_path=/dev/sdz"]) }),
      ],
      ["missing volume_capability", stage({ volume_capability: undefined })],
      ["missing access mode", stage({ volume_capability: { mount: { fs_type: "ext4" } } })],
      [
        "relative target path",
        () => node.NodePublishVolume({ ...req.publish, target_path: "pods/x" }),
      ],
      [
        "target path with ..",
        () => node.NodePublishVolume({ ...req.publish, target_path: `${env.kubeletDir}/a/../b` }),
      ],
      [
        "publish without capability",
        () => node.NodePublishVolume({ ...req.publish, volume_capability: undefined }),
      ],
      [
        "unstage relative path",
        () => node.NodeUnstageVolume({ ...req.unstage, staging_target_path: "x" }),
      ],
      [
        "unpublish volume id with /",
        () => node.NodeUnpublishVolume({ ...req.unpublish, volume_id: "a/b" }),
      ],
    ];
    for (const [what, call] of invalid) {
      await rejectedWithoutTrace(env, call, status.INVALID_ARGUMENT).catch((e) => {
        throw new Error(`${what}: ${e.message}`);
      });
    }
    await assertNothingLeft(env);
  });
});

Deno.test("node bad input: wrong state and conflicts get the spec's codes", async () => {
  await withNodeEnvironment(async (env) => {
    const node = env.node.client.node;
    const volume = await createVolume(env.controller.client, {
      name: "pvc-conflict",
      kind: "ext4",
      sizeBytes: GiB,
    });
    const req = nodeRequests(volume, { kind: "ext4", kubeletDir: env.kubeletDir });

    await rejectedWithoutTrace(
      env,
      () => node.NodePublishVolume(req.publish),
      status.FAILED_PRECONDITION,
      /NodeStageVolume/,
    );
    await rejectedWithoutTrace(
      env,
      () => node.NodeGetVolumeStats({ volume_id: "pvc-conflict", volume_path: req.staging }),
      status.NOT_FOUND,
    );

    await node.NodeStageVolume(req.stage);
    const staged = await readVolumeState(env, "pvc-conflict");
    for (
      const capability of [
        capabilityFor("xfs"),
        capabilityFor("block"),
        {
          mount: { fs_type: "ext4", mount_flags: ["noatime"] },
          access_mode: { mode: "SINGLE_NODE_WRITER" },
        },
      ]
    ) {
      await rejectedWithoutTrace(
        env,
        () => node.NodeStageVolume({ ...req.stage, volume_capability: capability }),
        status.ALREADY_EXISTS,
        /already staged/,
      );
    }
    await rejectedWithoutTrace(
      env,
      () => node.NodeStageVolume({ ...req.stage, staging_target_path: `${env.kubeletDir}/other` }),
      status.ALREADY_EXISTS,
    );
    assert.deepEqual(await readVolumeState(env, "pvc-conflict"), staged, "state unchanged");

    await rejectedWithoutTrace(
      env,
      () =>
        node.NodeGetVolumeStats({
          volume_id: "pvc-conflict",
          volume_path: `${env.kubeletDir}/not-a-volume-path`,
        }),
      status.NOT_FOUND,
    );
    await rejectedWithoutTrace(
      env,
      () => node.NodeGetVolumeStats({ volume_id: "pvc-unknown", volume_path: req.staging }),
      status.NOT_FOUND,
    );
    await rejectedWithoutTrace(
      env,
      () => node.NodePublishVolume({ ...req.publish, volume_capability: capabilityFor("block") }),
      status.ALREADY_EXISTS,
    );

    const processes = await volumeProcesses(env, "pvc-conflict");
    await node.NodeUnstageVolume(req.unstage);
    await assertNothingLeft(env, processes);
  });
});
