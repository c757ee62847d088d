/**
 * Many volumes at once and one volume many times: devices stay distinct,
 * and nothing accumulates on the host.
 *
 * Run as root: `deno test -A tests/integration/node_repeat_test.ts`.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { findMountByTarget } from "../../blockdev/mod.ts";
import {
  assertNothingLeft,
  type ProcessInfo,
  readVolumeState,
  volumeProcesses,
  withNodeEnvironment,
} from "../helpers/node_env.ts";
import {
  assertContent,
  createVolume,
  nodeRequests,
  randomBytes,
  writeFileSynced,
} from "../helpers/volume_steps.ts";

const GiB = 1024 ** 3;
const CONCURRENT_VOLUMES = 8;
const CYCLES = 20;

Deno.test(`node: ${CONCURRENT_VOLUMES} volumes staged concurrently get distinct devices`, async () => {
  await withNodeEnvironment(async (env) => {
    const names = Array.from({ length: CONCURRENT_VOLUMES }, (_, i) => `pvc-many-${i}`);
    const staged = await Promise.all(names.map(async (name) => {
      const volume = await createVolume(env.controller.client, {
        name,
        kind: "ext4",
        sizeBytes: GiB,
      });
      const req = nodeRequests(volume, { kind: "ext4", kubeletDir: env.kubeletDir });
      await env.node.client.node.NodeStageVolume(req.stage, 120_000);
      return { name, req };
    }));

    const devices = new Set<string>();
    const processes: ProcessInfo[] = [];
    for (const { name, req } of staged) {
      const state = await readVolumeState(env, name);
      assert.equal(state?.phase, "staged", name);
      const device = state!.attachment!.device;
      devices.add(device);
      const mount = await findMountByTarget(req.staging);
      assert.equal(mount?.source, device, `${name} is mounted from its own device`);
      assert.equal(mount?.fsType, "ext4");
      await writeFileSynced(join(req.staging, "name.txt"), new TextEncoder().encode(name));
      processes.push(...await volumeProcesses(env, name));
    }
    assert.equal(devices.size, CONCURRENT_VOLUMES, `distinct devices: ${[...devices]}`);
    for (const { name, req } of staged) {
      assert.equal(await Deno.readTextFile(join(req.staging, "name.txt")), name);
    }

    await Promise.all(
      staged.map(({ req }) => env.node.client.node.NodeUnstageVolume(req.unstage, 120_000)),
    );
    await assertNothingLeft(env, processes);
  });
});

Deno.test(`node: ${CYCLES} stage/unstage cycles leak nothing and keep the data`, async () => {
  await withNodeEnvironment(async (env) => {
    const name = "pvc-cycles";
    const volume = await createVolume(env.controller.client, {
      name,
      kind: "ext4",
      sizeBytes: GiB,
    });
    const req = nodeRequests(volume, { kind: "ext4", kubeletDir: env.kubeletDir });
    const data = randomBytes(128 * 1024);
    const dataPath = join(req.staging, "cycle-1.bin");
    for (let cycle = 1; cycle <= CYCLES; cycle++) {
      await env.node.client.node.NodeStageVolume(req.stage);
      if (cycle === 1) await writeFileSynced(dataPath, data);
      else await assertContent(dataPath, data);
      const processes = await volumeProcesses(env, name);
      await env.node.client.node.NodeUnstageVolume(req.unstage);
      await assertNothingLeft(env, processes);
    }
    const formats = env.node.output().split("\n").filter((l) =>
      l.includes("formatting new volume")
    );
    assert.equal(formats.length, 1, "formatted once, in cycle 1");
  });
});
