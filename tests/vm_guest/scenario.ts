/**
 * What every guest scenario shares: the node environment (kernel attach), a
 * place to note facts for the report, and the volumes to clean up when a
 * scenario fails half way.
 *
 * @module
 */

import assert from "node:assert/strict";
import { findMountByTarget } from "../../blockdev/mod.ts";
import {
  assertNothingLeft,
  findLeftovers,
  isStillRunning,
  type NodeEnvironment,
  type ProcessInfo,
  readVolumeState,
  volumeStateDir,
} from "../helpers/node_env.ts";
import { type AccessKind, nodeRequests } from "../helpers/volume_steps.ts";
import { assertNbdConnected, assertNbdFree } from "./kernel_state.ts";

/** Under TCG a stage starts ZeroFS (about 4 s to ready): give calls room. */
export const CALL_MS = 180_000;
export const GiB = 1024 ** 3;

/** One volume's node requests (see `nodeRequests`). */
export type NodeRequests = ReturnType<typeof nodeRequests>;

/** A running scenario. */
export class Scenario {
  readonly facts: Record<string, unknown> = {};
  readonly #tracked: NodeRequests[] = [];

  constructor(readonly env: NodeEnvironment) {}

  /** The node client of the agent running now (it changes on restart). */
  get node() {
    return this.env.node.client.node;
  }

  /** The requests for a volume, remembered for clean-up after a failure. */
  requests(
    volume: { volume_id: string; volume_context: Record<string, string> },
    kind: AccessKind,
  ): NodeRequests {
    const req = nodeRequests(volume, { kind, kubeletDir: this.env.kubeletDir });
    this.#tracked.push(req);
    return req;
  }

  /**
   * Stage through the CSI API and check what the kernel attacher did: a
   * `/dev/nbdK` recorded in state, connected with the volume's size, and
   * (mount access) mounted at the staging path. Returns the device.
   */
  async stage(req: NodeRequests, sizeBytes = GiB): Promise<string> {
    await this.node.NodeStageVolume(req.stage, CALL_MS);
    const state = await readVolumeState(this.env, req.stage.volume_id);
    assert.equal(state?.phase, "staged");
    assert.equal(state?.attachment?.mode, "kernel");
    const device = state!.attachment!.device;
    assert.match(device, /^\/dev\/nbd\d+$/);
    await assertNbdConnected(device, sizeBytes);
    if (req.stage.volume_capability.mount) {
      assert.equal((await findMountByTarget(req.staging))?.source, device);
    }
    return device;
  }

  /**
   * Unstage and check the order's outcome: the device free in sysfs, nothing
   * of the volume left (mount, state directory, any process naming it, any
   * of `processes`), and once no other volume is staged nothing at all.
   */
  async unstage(req: NodeRequests, device: string, processes: ProcessInfo[]): Promise<void> {
    await this.node.NodeUnstageVolume(req.unstage, CALL_MS);
    await assertNbdFree(device);
    assert.equal(await findMountByTarget(req.staging), undefined, `${req.staging} still mounted`);
    const dir = volumeStateDir(this.env, req.unstage.volume_id);
    await assert.rejects(Deno.lstat(dir), Deno.errors.NotFound, `${dir} is left`);
    const left = (await findLeftovers(this.env)).processes.filter((p) => p.includes(dir));
    assert.deepEqual(left, [], "processes of the unstaged volume");
    if ((await findLeftovers(this.env)).volumeDirs.length === 0) {
      await assertNothingLeft(this.env, processes);
    } else {
      for (const p of processes) {
        assert.ok(!(await isStillRunning(p)), `still running: ${p.pid} ${p.argv.join(" ")}`);
      }
    }
  }

  /** Best effort after a failure: unpublish and unstage what this scenario touched. */
  async cleanUp(): Promise<void> {
    const alive = await this.node.NodeGetCapabilities({}, 5_000).then(() => true, () => false);
    if (!alive) {
      await this.env.node.stop().catch(() => {});
      await this.env.restartNode();
    }
    for (const req of this.#tracked.reverse()) {
      await this.node.NodeUnpublishVolume(req.unpublish, CALL_MS).catch(() => {});
      await this.node.NodeUnstageVolume(req.unstage, CALL_MS).catch((e) =>
        console.error(`clean-up: unstage ${req.unstage.volume_id}: ${e}`)
      );
    }
  }
}

/** Poll `check` every `intervalMs` until it returns a value or `timeoutMs` passes. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  opts: { timeoutMs: number; intervalMs?: number },
): Promise<T> {
  const deadline = performance.now() + opts.timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (performance.now() > deadline) {
      throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 100));
  }
}
