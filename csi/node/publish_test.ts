/**
 * NodePublishVolume / NodeUnpublishVolume on fakes (attacher, ZeroFS
 * runner) with a real tmpfs as the staged filesystem and real bind mounts:
 * a failed publish takes back its record and the target it created; a
 * publish that finds its target mounted finishes an interrupted publish or
 * takes back an interrupted unpublish.
 *
 * Run as root (it mounts): `deno test -A csi/node/publish_test.ts`.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { findMountByTarget } from "../../blockdev/mod.ts";
import type {
  NodePublishVolumeRequest__Output,
  NodeUnpublishVolumeRequest__Output,
} from "../messages/mod.ts";
import { nodePublishVolume, nodeUnpublishVolume } from "./publish.ts";
import { FakeNode, STAGE_STEPS, stageSteps, unmountTmpfs } from "./test_fakes.ts";

const VOLUME = "pvc-publish";
const exists = (path: string) => Deno.lstat(path).then(() => true, () => false);

function requests(node: FakeNode, stagingPath: string) {
  const target = join(node.ctx.kubeletDir, "pods/pod-1/volumes", VOLUME);
  return {
    target,
    publish: {
      volume_id: VOLUME,
      staging_target_path: stagingPath,
      target_path: target,
      volume_capability: {
        mount: { fs_type: "ext4", mount_flags: [] },
        access_mode: { mode: "SINGLE_NODE_WRITER" },
      },
      readonly: false,
    } as unknown as NodePublishVolumeRequest__Output,
    unpublish: { volume_id: VOLUME, target_path: target } as NodeUnpublishVolumeRequest__Output,
  };
}

async function withStaged(
  steps: number,
  fn: (node: FakeNode, stagingPath: string) => Promise<void>,
): Promise<void> {
  const node = await FakeNode.create();
  let stagingPath = "";
  try {
    stagingPath = await stageSteps(node, VOLUME, steps);
    const state = (await node.ctx.states.read(VOLUME))!;
    await node.ctx.states.write({ ...state, phase: "staged" });
    await fn(node, stagingPath);
  } finally {
    await unmountTmpfs(requests(node, stagingPath).target);
    await unmountTmpfs(stagingPath);
    await node.cleanUp();
  }
}

Deno.test("a publish whose bind mount fails takes back its record and the target it created", async () => {
  // Recorded as staged, but the staging filesystem is not there: the bind mount fails.
  const beforeMount = STAGE_STEPS.indexOf("mount");
  await withStaged(beforeMount, async (node, stagingPath) => {
    const req = requests(node, stagingPath);
    await assert.rejects(nodePublishVolume(node.ctx, req.publish), /mount exited with code/);
    assert.deepEqual((await node.ctx.states.read(VOLUME))?.publishedTargets, []);
    assert.equal(await exists(req.target), false, "the target it created is gone");
    assert.equal(await findMountByTarget(req.target), undefined);
  });
});

Deno.test("publish records the target, unpublish removes mount, target and record", async () => {
  await withStaged(STAGE_STEPS.length, async (node, stagingPath) => {
    const req = requests(node, stagingPath);
    await Deno.writeTextFile(join(stagingPath, "data.txt"), "kept");
    await nodePublishVolume(node.ctx, req.publish);
    assert.deepEqual((await node.ctx.states.read(VOLUME))?.publishedTargets, [
      { path: req.target, readOnly: false },
    ]);
    assert.equal(await Deno.readTextFile(join(req.target, "data.txt")), "kept");

    await nodeUnpublishVolume(node.ctx, req.unpublish);
    assert.deepEqual((await node.ctx.states.read(VOLUME))?.publishedTargets, []);
    assert.equal(await findMountByTarget(req.target), undefined);
    assert.equal(await exists(req.target), false);
  });
});

Deno.test("a publish finding its target mounted finishes a cut-short publish or takes back an unpublish", async (t) => {
  for (const phase of ["publishing", "unpublishing"] as const) {
    await t.step(phase, async () => {
      await withStaged(STAGE_STEPS.length, async (node, stagingPath) => {
        const req = requests(node, stagingPath);
        await nodePublishVolume(node.ctx, req.publish);
        const state = (await node.ctx.states.read(VOLUME))!;
        await node.ctx.states.write({
          ...state,
          publishedTargets: [{ path: req.target, readOnly: false, phase }],
        });

        await nodePublishVolume(node.ctx, req.publish);

        assert.deepEqual((await node.ctx.states.read(VOLUME))?.publishedTargets, [
          { path: req.target, readOnly: false },
        ]);
        assert.ok(await findMountByTarget(req.target));
        await nodeUnpublishVolume(node.ctx, req.unpublish);
      });
    });
  }
});
