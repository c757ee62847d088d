/**
 * Start-up recovery on fakes (attacher, ZeroFS runner), with real tmpfs
 * mounts standing in for staging and target mounts and the real
 * cross-process volume lock: it finishes an interrupted unstage and
 * unpublish, keeps or takes back an interrupted publish, leaves a stage to
 * kubelet, and leaves alone a volume another process holds.
 *
 * Run as root (it mounts tmpfs): `deno test -A csi/node/recovery_test.ts`.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { findMountByTarget } from "../../blockdev/mod.ts";
import { VolumeBusyError, VolumeFileLocks } from "../locks.ts";
import { recoverNodeState } from "./recovery.ts";
import type { PublishedTarget } from "./state.ts";
import { FakeNode, mountTmpfs, STAGE_STEPS, stageSteps, unmountTmpfs } from "./test_fakes.ts";

const exists = (path: string) => Deno.lstat(path).then(() => true, () => false);

async function withFakeNode(fn: (node: FakeNode) => Promise<void>): Promise<void> {
  const node = await FakeNode.create();
  try {
    await fn(node);
  } finally {
    const mounts = [];
    for (const name of ["staging/pvc-a", "staging/pvc-b", "staging/pvc-c", "pods/t1", "pods/t2"]) {
      mounts.push(join(node.ctx.kubeletDir, name));
    }
    for (const m of mounts) await unmountTmpfs(m);
    await node.cleanUp();
  }
}

Deno.test("recovery finishes an interrupted unstage under the volume's file lock", async () => {
  await withFakeNode(async (node) => {
    const { ctx } = node;
    const staging = await stageSteps(node, "pvc-a", STAGE_STEPS.length);
    const state = (await ctx.states.read("pvc-a"))!;
    await ctx.states.write({ ...state, phase: "unstaging" });
    const lockSeen: string[] = [];
    node.onEffect = async (e) => {
      // Another process (here: another lock holder) trying the volume meanwhile is refused.
      const other = await new VolumeFileLocks(ctx.stateRoot).acquire("pvc-a", "test").then(
        async (release) => {
          await release();
          return "free";
        },
        (err) => err instanceof VolumeBusyError ? "held" : String(err),
      );
      lockSeen.push(`${e.what}: lock ${other}`);
    };

    const found = await recoverNodeState(ctx);

    assert.deepEqual(lockSeen, ["detach /dev/fake0: lock held", "stop ZeroFS: lock held"]);
    assert.equal(await findMountByTarget(staging), undefined);
    assert.deepEqual([...node.connected, ...node.running], []);
    assert.equal(await ctx.states.read("pvc-a"), null);
    assert.deepEqual(found.map((f) => [f.volumeId, f.phase]), [["pvc-a", "unstaged"]]);
    // Released afterwards: the agent's own calls can take it.
    await (await new VolumeFileLocks(ctx.stateRoot).acquire("pvc-a", "after"))();
  });
});

Deno.test("recovery settles interrupted publishes and unpublishes; a stage is left to kubelet", async () => {
  await withFakeNode(async (node) => {
    const { ctx } = node;
    await stageSteps(node, "pvc-b", STAGE_STEPS.length);
    const t1 = join(ctx.kubeletDir, "pods/t1"); // publishing, mounted → published
    const t2 = join(ctx.kubeletDir, "pods/t2"); // unpublishing, mounted → gone
    const t3 = join(ctx.kubeletDir, "pods/t3"); // publishing, never mounted → gone
    const t4 = join(ctx.kubeletDir, "pods/t4"); // published → kept as is
    await mountTmpfs(t1);
    await mountTmpfs(t2);
    await Deno.mkdir(t3, { recursive: true });
    await Deno.mkdir(t4, { recursive: true });
    const targets: PublishedTarget[] = [
      { path: t1, readOnly: false, phase: "publishing" },
      { path: t2, readOnly: false, phase: "unpublishing" },
      { path: t3, readOnly: true, phase: "publishing" },
      { path: t4, readOnly: false },
    ];
    const b = (await ctx.states.read("pvc-b"))!;
    await ctx.states.write({ ...b, publishedTargets: targets });
    await stageSteps(node, "pvc-c", 3); // killed mid-stage: recorded, ZeroFS, attached
    const c = (await ctx.states.read("pvc-c"))!;
    node.effects.length = 0;

    await recoverNodeState(ctx);

    const after = (await ctx.states.read("pvc-b"))!;
    assert.equal(after.phase, "staged");
    assert.deepEqual(after.publishedTargets, [
      { path: t1, readOnly: false },
      { path: t4, readOnly: false },
    ]);
    assert.ok(await findMountByTarget(t1), "t1 stays mounted");
    assert.equal(await findMountByTarget(t2), undefined);
    assert.deepEqual([await exists(t2), await exists(t3), await exists(t4)], [false, false, true]);
    assert.deepEqual(await ctx.states.read("pvc-c"), c, "the stage is left as it was");
    assert.deepEqual(node.effects, [], "no device or ZeroFS touched");
    assert.ok(
      node.logLines.some((l) =>
        l.volume_id === "pvc-c" && String(l.msg).startsWith("volume needs attention")
      ),
    );
  });
});

Deno.test("recovery leaves alone a volume whose lock another process holds", async () => {
  await withFakeNode(async (node) => {
    const { ctx } = node;
    await stageSteps(node, "pvc-a", STAGE_STEPS.length);
    const state = (await ctx.states.read("pvc-a"))!;
    await ctx.states.write({ ...state, phase: "unstaging" });
    const release = await new VolumeFileLocks(ctx.stateRoot).acquire("pvc-a", "detach verb");
    try {
      node.effects.length = 0;
      const found = await recoverNodeState(ctx);
      assert.deepEqual(found, []);
      assert.deepEqual(node.effects, []);
      assert.equal((await ctx.states.read("pvc-a"))?.phase, "unstaging");
      const line = node.logLines.find((l) => l.volume_id === "pvc-a");
      assert.equal(line?.msg, "volume busy at start; recovery left it to the holder");
    } finally {
      await release();
    }
    // Once free, the next start finishes it.
    await recoverNodeState(ctx);
    assert.equal(await ctx.states.read("pvc-a"), null);
  });
});
