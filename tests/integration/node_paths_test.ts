/**
 * Host paths from the CO, with the real driver: staging and target paths
 * outside `--kubelet-dir` are refused, symlinks below it are never followed,
 * and NodeUnpublishVolume removes only targets the node recorded.
 *
 * Run as root: `deno test -A tests/integration/node_paths_test.ts`.
 */

import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import { join } from "node:path";
import { findMountByTarget, pathExists } from "../../blockdev/mod.ts";
import { assertNothingLeft, readVolumeState, withNodeEnvironment } from "../helpers/node_env.ts";
import { createVolume, expectCode, nodeRequests } from "../helpers/volume_steps.ts";

const GiB = 1024 ** 3;

async function entries(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

Deno.test("node paths: outside the kubelet dir, symlinks, unrecorded targets", async () => {
  await withNodeEnvironment(async (env) => {
    const node = env.node.client.node;
    const volume = await createVolume(env.controller.client, {
      name: "pvc-paths",
      kind: "ext4",
      sizeBytes: GiB,
    });
    const req = nodeRequests(volume, { kind: "ext4", kubeletDir: env.kubeletDir });
    // What a symlink would lead to: it must stay exactly like this.
    const outside = join(env.dir, "outside");
    await Deno.mkdir(outside);
    await Deno.writeTextFile(join(outside, "keep.txt"), "keep");
    const outsideUntouched = async () => {
      assert.deepEqual(await entries(outside), ["keep.txt"]);
      assert.equal(await findMountByTarget(outside), undefined);
    };
    const kubeletEscape = new RegExp(`not inside the kubelet directory ${env.kubeletDir}`);

    // Staging outside the kubelet directory: refused, nothing made.
    const elsewhere = join(env.dir, "elsewhere", "staging");
    await expectCode(
      node.NodeStageVolume({ ...req.stage, staging_target_path: elsewhere }),
      status.INVALID_ARGUMENT,
      new RegExp(`staging_target_path "${elsewhere}" is ${kubeletEscape.source}`),
    );
    assert.equal(await pathExists(join(env.dir, "elsewhere")), false);
    assert.equal(await readVolumeState(env, "pvc-paths"), null);
    // The kubelet directory itself is not a staging path either.
    await expectCode(
      node.NodeStageVolume({ ...req.stage, staging_target_path: env.kubeletDir }),
      status.INVALID_ARGUMENT,
      kubeletEscape,
    );

    // Staging below a symlinked directory: refused, the link's destination untouched.
    await Deno.symlink(outside, join(env.kubeletDir, "plugins-link"));
    await expectCode(
      node.NodeStageVolume({
        ...req.stage,
        staging_target_path: join(env.kubeletDir, "plugins-link", "staging"),
      }),
      status.INVALID_ARGUMENT,
      /staging_target_path .*plugins-link is a symlink/,
    );
    await outsideUntouched();
    assert.equal(await readVolumeState(env, "pvc-paths"), null);

    await node.NodeStageVolume(req.stage);

    // Targets outside, below a symlinked parent, or themselves a symlink: refused.
    await expectCode(
      node.NodePublishVolume({ ...req.publish, target_path: join(outside, "target") }),
      status.INVALID_ARGUMENT,
      new RegExp(`target_path ".*" is ${kubeletEscape.source}`),
    );
    await Deno.mkdir(join(env.kubeletDir, "pods"), { recursive: true });
    await Deno.symlink(outside, join(env.kubeletDir, "pods", "pod-evil"));
    await expectCode(
      node.NodePublishVolume({
        ...req.publish,
        target_path: join(env.kubeletDir, "pods", "pod-evil", "volumes", "pvc-paths"),
      }),
      status.INVALID_ARGUMENT,
      /target_path .*pod-evil is a symlink/,
    );
    await outsideUntouched();
    const linkTarget = join(env.kubeletDir, "pods", "pod-2", "volumes", "pvc-paths");
    await Deno.mkdir(join(linkTarget, ".."), { recursive: true });
    await Deno.symlink(outside, linkTarget);
    await expectCode(
      node.NodePublishVolume({ ...req.publish, target_path: linkTarget }),
      status.INVALID_ARGUMENT,
      /target_path .* is a symlink/,
    );
    await outsideUntouched();
    // Nor is a symlinked target unmounted or removed.
    await expectCode(
      node.NodeUnpublishVolume({ volume_id: "pvc-paths", target_path: linkTarget }),
      status.INVALID_ARGUMENT,
      /is a symlink/,
    );
    assert.equal((await Deno.lstat(linkTarget)).isSymlink, true);
    await outsideUntouched();

    await node.NodePublishVolume(req.publish);
    assert.deepEqual(
      (await readVolumeState(env, "pvc-paths"))?.publishedTargets.map((t) => t.path),
      [req.target],
    );

    // Unpublish of a path the node never published there: success, path left in place.
    const unrecorded = join(env.kubeletDir, "pods", "pod-3", "volumes", "pvc-paths");
    await Deno.mkdir(unrecorded, { recursive: true });
    await node.NodeUnpublishVolume({ volume_id: "pvc-paths", target_path: unrecorded });
    assert.equal((await Deno.lstat(unrecorded)).isDirectory, true);
    // ... and for a volume this node does not know: NOT_FOUND, path left in place.
    await expectCode(
      node.NodeUnpublishVolume({ volume_id: "pvc-unknown", target_path: unrecorded }),
      status.NOT_FOUND,
      /pvc-unknown/,
    );
    assert.equal((await Deno.lstat(unrecorded)).isDirectory, true);
    // The recorded target is still published, untouched by either call.
    assert.equal((await findMountByTarget(req.target))?.fsType, "ext4");

    await node.NodeUnpublishVolume(req.unpublish);
    assert.equal(await pathExists(req.target), false);
    // Idempotent: the retry is success.
    await node.NodeUnpublishVolume(req.unpublish);
    await node.NodeUnstageVolume(req.unstage);
    await outsideUntouched();
    await assertNothingLeft(env);
  });
});
