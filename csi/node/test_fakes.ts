/**
 * Test-only fakes of the node's ports: an attacher and a ZeroFS runner that
 * keep their "devices" and "processes" in memory, and note every effect
 * with what the volume's state record said at that moment — so that a test
 * can show in which order a handler acts and what it had recorded first.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type Attacher,
  type Attachment,
  findMountByTarget,
  type NbdTarget,
  type RecordIntent,
} from "../../blockdev/mod.ts";
import {
  type InstanceSpec,
  type InstanceStatus,
  volumePaths,
  type ZeroFsRunner,
} from "../../zerofs/mod.ts";
import { createLogger } from "../log.ts";
import { DEFAULT_FS_TYPES } from "../validate.ts";
import type { NodeContext } from "./context.ts";
import { NO_EVENTS } from "./events.ts";
import { NodeStateStore, type NodeVolumeState } from "./state.ts";

/** One effect a fake performed, and the recorded phase it saw. */
export interface Effect {
  what: string;
  volumeId: string;
  /** The volume's recorded phase when the effect happened (null: no record). */
  phase: string | null;
}

/** Fake attacher, runner and a node context around them, on a temporary state root. */
export class FakeNode {
  readonly effects: Effect[] = [];
  readonly connected = new Set<string>();
  readonly running = new Set<string>();
  /** Which volume each fake device was attached for. */
  readonly owners = new Map<string, string>();
  /** Called before each effect, e.g. to observe what else holds at that moment. */
  onEffect: (effect: Effect) => Promise<void> = () => Promise.resolve();
  readonly logLines: Record<string, unknown>[] = [];
  #next = 0;

  constructor(readonly ctx: NodeContext) {}

  static async create(): Promise<FakeNode> {
    const root = await Deno.makeTempDir({ prefix: "zerofs-csi-node-fakes-" });
    const stateRoot = `${root}/state`;
    const kubeletDir = `${root}/kubelet`;
    await Deno.mkdir(kubeletDir, { recursive: true });
    const holder: { node?: FakeNode } = {};
    const ctx: NodeContext = {
      nodeId: "fake-node",
      stateRoot,
      kubeletDir,
      allowedFsTypes: DEFAULT_FS_TYPES,
      runner: fakeRunner(() => holder.node!),
      attacher: fakeAttacher(() => holder.node!),
      states: new NodeStateStore(stateRoot),
      settings: { resolve: () => Promise.reject(new Error("fake node resolves no settings")) },
      events: NO_EVENTS,
      log: createLogger("debug", (line) => holder.node!.logLines.push(JSON.parse(line))),
    };
    holder.node = new FakeNode(ctx);
    return holder.node;
  }

  /** The next fake device name. */
  nextDevice(): string {
    return `/dev/fake${this.#next++}`;
  }

  /** Note an effect with the phase the volume's record says now. */
  async note(what: string, volumeId: string): Promise<void> {
    const state = await this.ctx.states.read(volumeId);
    const effect = { what, volumeId, phase: state?.phase ?? null };
    await this.onEffect(effect);
    this.effects.push(effect);
  }

  async cleanUp(): Promise<void> {
    await Deno.remove(this.ctx.stateRoot.replace(/\/state$/, ""), { recursive: true });
  }
}

function fakeAttacher(node: () => FakeNode): Attacher {
  return {
    mode: "userspace",
    async attach(target: NbdTarget, record: RecordIntent): Promise<Attachment> {
      const attachment: Attachment = { mode: "userspace", device: node().nextDevice() };
      node().owners.set(attachment.device, target.volumeId);
      await record(attachment);
      await node().note(`attach ${attachment.device}`, target.volumeId);
      node().connected.add(attachment.device);
      return attachment;
    },
    async detach(attachment: Attachment): Promise<void> {
      if (!node().connected.has(attachment.device)) return;
      await node().note(`detach ${attachment.device}`, node().owners.get(attachment.device)!);
      node().connected.delete(attachment.device);
    },
    isConnected: (attachment) => Promise.resolve(node().connected.has(attachment.device)),
    capacity: () => Promise.resolve(16),
  };
}

function fakeRunner(node: () => FakeNode): ZeroFsRunner {
  const status = (volumeId: string): InstanceStatus => {
    const up = node().running.has(volumeId);
    return { volumeId, running: up, ready: up, reason: up ? undefined : "not running" };
  };
  return {
    createsPrivateSockets: true,
    version: () => Promise.reject(new Error("the fake runner has no ZeroFS version")),
    view: () => {
      throw new Error("the fake runner renders no view");
    },
    async ensure(spec: InstanceSpec): Promise<InstanceStatus> {
      if (!node().running.has(spec.volumeId)) {
        await node().note("start ZeroFS", spec.volumeId);
        node().running.add(spec.volumeId);
      }
      return status(spec.volumeId);
    },
    async stop(volumeId: string): Promise<void> {
      if (!node().running.has(volumeId)) return;
      await node().note("stop ZeroFS", volumeId);
      node().running.delete(volumeId);
    },
    status: (volumeId: string) => Promise.resolve(status(volumeId)),
  };
}

/** The steps of NodeStageVolume (mount access), in order. */
export const STAGE_STEPS = ["record staging", "start ZeroFS", "attach", "mount", "record staged"];

/**
 * Do the first `done` steps of a stage on the fakes, as stage.ts orders
 * them (each recorded before its effect); returns the staging path.
 */
export async function stageSteps(
  node: FakeNode,
  volumeId: string,
  done: number,
): Promise<string> {
  const { ctx } = node;
  const stagingPath = join(ctx.kubeletDir, "staging", volumeId);
  const paths = volumePaths(ctx.stateRoot, volumeId);
  let state: NodeVolumeState = {
    schema: 1,
    volumeId,
    stagingPath,
    accessType: "mount",
    fsType: "ext4",
    mountFlags: [],
    readOnly: false,
    accessMode: "SINGLE_NODE_WRITER",
    phase: "staging",
    publishedTargets: [],
    updatedAt: "",
  };
  const steps: (() => Promise<void>)[] = [
    () => ctx.states.write(state),
    async () => {
      await ctx.runner.ensure({ volumeId, stateDir: paths.dir } as InstanceSpec);
    },
    async () => {
      const target = {
        volumeId,
        socketPath: paths.nbdSocket,
        exportName: "disk",
        readOnly: false,
        workDir: paths.dir,
      };
      const attachment = await ctx.attacher.attach(target, (intent) => {
        state = { ...state, attachment: intent };
        return ctx.states.write(state);
      });
      state = { ...state, attachment };
      await ctx.states.write(state);
    },
    () => mountTmpfs(stagingPath),
    () => ctx.states.write({ ...state, phase: "staged" }),
  ];
  for (const step of steps.slice(0, done)) await step();
  return stagingPath;
}

/** A tmpfs at `path`: a real mount standing in for the staged filesystem. */
export async function mountTmpfs(path: string): Promise<void> {
  await Deno.mkdir(path, { recursive: true });
  const out = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", "size=1m", "zerofs-csi-test", path],
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
}

/** Unmount `path` if something is mounted there (test clean-up). */
export async function unmountTmpfs(path: string): Promise<void> {
  if (!(await findMountByTarget(path))) return;
  const out = await new Deno.Command("umount", { args: [path], stderr: "piped" }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
}
