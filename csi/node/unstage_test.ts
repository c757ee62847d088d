/**
 * Unstage reverses stage step by step, on fakes (attacher, ZeroFS runner)
 * and a real tmpfs standing in for the staging mount: from every point a
 * stage can stop at, unstage undoes exactly the steps done, newest first,
 * with phase `unstaging` recorded before its first effect.
 *
 * Run as root (it mounts a tmpfs): `deno test -A csi/node/unstage_test.ts`.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { findMountByTarget } from "../../blockdev/mod.ts";
import { volumePaths } from "../../zerofs/mod.ts";
import type { NodeVolumeState } from "./state.ts";
import { FakeNode, STAGE_STEPS, stageSteps, unmountTmpfs } from "./test_fakes.ts";
import { nodeUnstageVolume } from "./unstage.ts";

/** What unstage must undo for the first `done` stage steps, newest first. */
function expectedUndo(done: number): string[] {
  const undo: Record<string, string> = {
    "start ZeroFS": "stop ZeroFS",
    "attach": "detach /dev/fake0",
    "mount": "unmount",
  };
  return STAGE_STEPS.slice(0, done).map((s) => undo[s]).filter((u) => u !== undefined).reverse();
}

Deno.test("unstage reverses stage step by step, recording `unstaging` before its first effect", async (t) => {
  for (let done = 1; done <= STAGE_STEPS.length; done++) {
    await t.step(`after "${STAGE_STEPS[done - 1]}"`, async () => {
      const node = await FakeNode.create();
      try {
        const volumeId = "pvc-unstage";
        const stagingPath = await stageSteps(node, volumeId, done);
        const wasMounted = (await findMountByTarget(stagingPath)) !== undefined;
        node.effects.length = 0;
        const undone: string[] = wasMounted ? ["unmount"] : [];
        // The fakes' effects come after the unmount: each sees whether it happened.
        node.onEffect = async (e) => {
          assert.equal(e.phase, "unstaging", `${e.what} ran before "unstaging" was recorded`);
          assert.equal(await findMountByTarget(stagingPath), undefined, `${e.what} under a mount`);
          undone.push(e.what);
        };

        await nodeUnstageVolume(node.ctx, {
          volume_id: volumeId,
          staging_target_path: stagingPath,
        });

        assert.deepEqual(undone, expectedUndo(done));
        assert.equal(await findMountByTarget(stagingPath), undefined);
        assert.deepEqual([...node.connected], []);
        assert.deepEqual([...node.running], []);
        assert.equal(await node.ctx.states.read(volumeId), null);
        const dir = volumePaths(node.ctx.stateRoot, volumeId).dir;
        assert.equal(await Deno.stat(dir).then(() => "exists", () => "gone"), "gone");
        const line = node.logLines.find((l) => l.msg === "volume unstaged");
        assert.equal(line?.volume_id, volumeId);
      } finally {
        await unmountTmpfs(join(node.ctx.kubeletDir, "staging/pvc-unstage"));
        await node.cleanUp();
      }
    });
  }
});

/** The steps of NodeUnstageVolume after it recorded `unstaging`, in order. */
const UNSTAGE_STEPS = ["unmount", "detach /dev/fake0", "stop ZeroFS"];

Deno.test("an unstage that stopped half way is resumed from where it stopped", async (t) => {
  for (let done = 0; done <= UNSTAGE_STEPS.length; done++) {
    await t.step(
      `after ${done === 0 ? "recording unstaging" : UNSTAGE_STEPS[done - 1]}`,
      async () => {
        const node = await FakeNode.create();
        try {
          const volumeId = "pvc-resume";
          const stagingPath = await stageSteps(node, volumeId, STAGE_STEPS.length);
          let state: NodeVolumeState = (await node.ctx.states.read(volumeId))!;
          state = { ...state, phase: "unstaging" };
          await node.ctx.states.write(state);
          // What the interrupted unstage had done, as unstage.ts does it.
          const doneSteps: (() => Promise<void>)[] = [
            () => unmountTmpfs(stagingPath),
            async () => {
              await node.ctx.attacher.detach(state.attachment!);
              await node.ctx.states.write({ ...state, attachment: undefined });
            },
            () => node.ctx.runner.stop(volumeId, ""),
          ];
          for (const step of doneSteps.slice(0, done)) await step();
          const undone: string[] = [];
          if (await findMountByTarget(stagingPath)) undone.push("unmount");
          node.onEffect = (e) => {
            assert.equal(e.phase, "unstaging");
            undone.push(e.what);
            return Promise.resolve();
          };

          await nodeUnstageVolume(node.ctx, {
            volume_id: volumeId,
            staging_target_path: stagingPath,
          });

          assert.deepEqual(undone, UNSTAGE_STEPS.slice(done));
          assert.equal(await findMountByTarget(stagingPath), undefined);
          assert.deepEqual([...node.connected, ...node.running], []);
          assert.equal(await node.ctx.states.read(volumeId), null);
        } finally {
          await unmountTmpfs(join(node.ctx.kubeletDir, "staging/pvc-resume"));
          await node.cleanUp();
        }
      },
    );
  }
});
