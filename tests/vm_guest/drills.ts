/**
 * The kernel path's failure drills: the node agent restarted under a running
 * writer, ZeroFS killed under a mounted volume, more volumes than nbd
 * devices, and many stage/unstage cycles of one volume.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { status as grpcStatus } from "@grpc/grpc-js";
import { findMountByTarget } from "../../blockdev/mod.ts";
import {
  findLeftovers,
  isStillRunning,
  listProcesses,
  readVolumeState,
  volumeProcesses,
  volumeStateDir,
  zerofsPid,
} from "../helpers/node_env.ts";
import {
  assertContent,
  createVolume,
  expectCode,
  randomBytes,
  writeFileSynced,
} from "../helpers/volume_steps.ts";
import {
  assertAllNbdFree,
  assertNbdFree,
  directReadWorks,
  readNbd,
  servingProcesses,
} from "./kernel_state.ts";
import { CALL_MS, GiB, type NodeRequests, type Scenario, waitFor } from "./scenario.ts";

/**
 * Appends `line-<i>` to its file and fsyncs it (coreutils `sync FILE`), until
 * `<file>.stop` appears; then prints how many lines it wrote. `set -e`: the
 * first failed write or fsync ends it with a non-zero status.
 */
const WRITER_SCRIPT = `set -eu
i=0
while [ ! -e "$1.stop" ]; do
  i=$((i + 1))
  echo "line-$i" >> "$1"
  sync "$1"
done
echo "$i"
`;

/** A background writer on a mounted volume. */
interface Writer {
  file: string;
  /** Lines in the file now. */
  lines(): Promise<number>;
  /** True until the writer exits. */
  running(): boolean;
  /** Ask it to stop; returns its exit code and the count it printed. */
  stop(): Promise<{ code: number; written: number; stderr: string }>;
}

function startWriter(file: string): Writer {
  const child = new Deno.Command("sh", {
    args: ["-c", WRITER_SCRIPT, "writer", file],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let exited = false;
  const output = child.output().finally(() => exited = true);
  return {
    file,
    lines: async () => (await Deno.readTextFile(file).catch(() => "")).split("\n").length - 1,
    running: () => !exited,
    async stop() {
      await Deno.writeTextFile(`${file}.stop`, "");
      const out = await output;
      const dec = new TextDecoder();
      return {
        code: out.code,
        written: Number(dec.decode(out.stdout).trim()),
        stderr: dec.decode(out.stderr),
      };
    },
  };
}

/** `line-1` … `line-n`, each followed by a newline. */
function expectedLines(n: number): string {
  let text = "";
  for (let i = 1; i <= n; i++) text += `line-${i}\n`;
  return text;
}

/**
 * Drill 1: the node agent is killed (SIGKILL) and started again while a
 * writer appends and fsyncs on the published volume. The kernel keeps the
 * NBD connection, so the writer never sees an error; the new agent re-adopts
 * the volume; after unstage and a new stage every line is there.
 */
export async function agentRestartUnderWriter(s: Scenario): Promise<void> {
  const name = "pvc-vm-agent-restart";
  const volume = await createVolume(s.env.controller.client, {
    name,
    kind: "ext4",
    sizeBytes: GiB,
  });
  const req = s.requests(volume, "ext4");
  const device = await s.stage(req);
  await s.node.NodePublishVolume(req.publish, CALL_MS);
  const writer = startWriter(join(req.target, "lines.txt"));
  try {
    await waitFor("20 lines", async () => await writer.lines() >= 20 || undefined, {
      timeoutMs: 60_000,
    });
    s.env.node.client.close();
    s.env.node.process.kill("SIGKILL");
    assert.equal((await s.env.node.process.status).signal, "SIGKILL");
    const atKill = await writer.lines();
    const restartStarted = performance.now();
    await s.env.restartNode();
    s.facts.agentRestartMs = Math.round(performance.now() - restartStarted);
    const atRestart = await writer.lines();
    assert.ok(writer.running(), "the writer is still running after the agent restart");
    assert.ok(
      atRestart > atKill,
      `writes continued while the agent was down: ${atKill} → ${atRestart}`,
    );
    const readopted = s.env.node.output().split("\n").filter((l) =>
      l.includes("re-adopted staged volume") && l.includes(name)
    );
    assert.equal(readopted.length, 1, `re-adoption log line:\n${s.env.node.output()}`);
    assert.ok(readopted[0].includes(device), readopted[0]);

    const stats = await s.node.NodeGetVolumeStats(
      { volume_id: name, volume_path: req.target },
      CALL_MS,
    );
    assert.equal(stats.volume_condition.abnormal, false, stats.volume_condition.message);
    // Kubelet retries stage and publish after a restart: both are no-ops.
    await s.node.NodeStageVolume(req.stage, CALL_MS);
    await s.node.NodePublishVolume(req.publish, CALL_MS);
    assert.equal((await readVolumeState(s.env, name))?.attachment?.device, device);
    await waitFor(
      "writes after the restart",
      async () => await writer.lines() >= atRestart + 20 || undefined,
      { timeoutMs: 60_000 },
    );

    const done = await writer.stop();
    assert.equal(done.code, 0, `the writer failed: ${done.stderr}`);
    assert.equal(await writer.lines(), done.written);
    Object.assign(s.facts, {
      linesAtKill: atKill,
      linesAtRestart: atRestart,
      linesWritten: done.written,
    });
  } finally {
    if (writer.running()) await writer.stop();
  }
  const text = await Deno.readTextFile(writer.file);
  assert.equal(text, expectedLines(Number(s.facts.linesWritten)), "every line, in order");

  await s.node.NodeUnpublishVolume(req.unpublish, CALL_MS);
  await s.unstage(req, device, await volumeProcesses(s.env, name));
  const again = await s.stage(req);
  assert.equal(await Deno.readTextFile(join(req.staging, "lines.txt")), text);
  await s.unstage(req, again, await volumeProcesses(s.env, name));
  await s.env.controller.client.controller.DeleteVolume({ volume_id: name }, CALL_MS);
}

/** How long NodeGetVolumeStats may take to see a dead ZeroFS (the bound). */
const CONDITION_BOUND_MS = 5_000;
/** How long the drill watches the device for a silent reconnect. */
const WATCH_MS = 8_000;
/** How often the watch looks for a sign of a reconnect. */
const PROBE_INTERVAL_MS = 100;

/**
 * Drill 2: ZeroFS is SIGKILLed under a mounted volume.
 * NodeGetVolumeStats turns abnormal with a reason within 5 s; the device is
 * never reconnected on its own (no new ZeroFS, I/O keeps failing); unstage
 * completes and frees the device; an explicit stage brings the volume back
 * with its synced data.
 */
export async function zerofsKilled(s: Scenario): Promise<void> {
  const name = "pvc-vm-zerofs-kill";
  const volume = await createVolume(s.env.controller.client, {
    name,
    kind: "ext4",
    sizeBytes: GiB,
  });
  const req = s.requests(volume, "ext4");
  const device = await s.stage(req);
  await s.node.NodePublishVolume(req.publish, CALL_MS);
  const data = randomBytes(128 * 1024);
  await writeFileSynced(join(req.target, "before.bin"), data);
  const stats = () =>
    s.node.NodeGetVolumeStats({ volume_id: name, volume_path: req.target }, CALL_MS);
  const healthy = await stats();
  assert.equal(healthy.volume_condition.abnormal, false, healthy.volume_condition.message);
  assert.ok(await directReadWorks(device, 1000), "direct reads work while ZeroFS runs");

  const processes = await volumeProcesses(s.env, name);
  const pid = await zerofsPid(s.env, name);
  const configPath = join(volumeStateDir(s.env, name), "config.toml");
  Deno.kill(pid, "SIGKILL");
  const killedAt = performance.now();
  const abnormal = await waitFor("an abnormal volume condition", async () => {
    const res = await stats();
    return res.volume_condition.abnormal ? res : undefined;
  }, { timeoutMs: 30_000, intervalMs: 100 });
  const conditionMs = Math.round(performance.now() - killedAt);
  s.facts.conditionMs = conditionMs;
  s.facts.conditionMessage = abnormal.volume_condition.message;
  assert.ok(conditionMs <= CONDITION_BOUND_MS, `abnormal after ${conditionMs} ms`);
  assert.match(abnormal.volume_condition.message, /ZeroFS is not ready/);

  await waitFor("the volume's ZeroFS to exit", async () => {
    for (const p of processes) if (await isStillRunning(p)) return undefined;
    return true;
  }, { timeoutMs: 15_000 });

  // Kubelet retries NodeStageVolume on a staged volume: that must not restart ZeroFS under
  // the connected device (it may have lost acknowledged writes), only say how to recover.
  const retry = await expectCode(
    s.node.NodeStageVolume(req.stage, CALL_MS),
    grpcStatus.FAILED_PRECONDITION,
    new RegExp(
      `volume "${name}" has a device connected but its ZeroFS is not ready .*; ` +
        `unstage the volume to recover it`,
    ),
  );
  s.facts.stageRetryWhileDead = retry.details;

  // Watch for a silent reconnect: poll for any sign of one until the window has passed.
  // Nothing is expected to happen, so the window is the claim; the first sign fails the drill.
  const watchUntil = performance.now() + WATCH_MS;
  let probes = 0;
  await waitFor("the end of the reconnect watch", async () => {
    probes++;
    assert.equal(
      await zerofsPid(s.env, name),
      pid,
      "the ZeroFS process record still names the dead ZeroFS",
    );
    const serving = (await listProcesses()).filter((p) => p.argv.includes(configPath));
    assert.deepEqual(serving.map((p) => p.argv.join(" ")), [], "no ZeroFS runs this volume");
    assert.equal(
      await directReadWorks(device, 2000 + probes),
      false,
      `${device} answered a direct read after ZeroFS died: it was reconnected`,
    );
    const again = await stats();
    assert.equal(again.volume_condition.abnormal, true, "the condition stays abnormal");
    return performance.now() >= watchUntil && probes >= 3 ? true : undefined;
  }, { timeoutMs: WATCH_MS + 3 * CALL_MS, intervalMs: PROBE_INTERVAL_MS });
  s.facts.deviceAfterKill = await readNbd(device);
  s.facts.probes = probes;
  await s.node.NodeUnpublishVolume(req.unpublish, CALL_MS);
  await s.unstage(req, device, processes);
  assert.equal(await findMountByTarget(req.staging), undefined);

  const again = await s.stage(req);
  const newPid = await zerofsPid(s.env, name);
  assert.notEqual(newPid, pid, "the explicit stage started a new ZeroFS");
  await assertContent(join(req.staging, "before.bin"), data);
  await s.unstage(req, again, await volumeProcesses(s.env, name));
  await s.env.controller.client.controller.DeleteVolume({ volume_id: name }, CALL_MS);
}

/**
 * Drill 3: with `nbds_max=4`, four block volumes stage, the fifth gets
 * RESOURCE_EXHAUSTED and leaves nothing behind; after one unstage it stages.
 */
export async function deviceExhaustion(s: Scenario, devices: number): Promise<void> {
  const info = await s.node.NodeGetInfo({}, CALL_MS);
  assert.equal(Number(info.max_volumes_per_node), devices, "NodeGetInfo counts the nbd devices");
  const reqs: NodeRequests[] = [];
  for (let i = 0; i <= devices; i++) {
    const volume = await createVolume(s.env.controller.client, {
      name: `pvc-vm-cap-${i}`,
      kind: "block",
      sizeBytes: GiB,
    });
    reqs.push(s.requests(volume, "block"));
  }
  const staged: string[] = [];
  for (const req of reqs.slice(0, devices)) staged.push(await s.stage(req));
  assert.equal(new Set(staged).size, devices, `distinct devices: ${staged}`);

  const extra = reqs[devices];
  const before = await findLeftovers(s.env);
  const servingBefore = await servingProcesses();
  const refused = await expectCode(
    s.node.NodeStageVolume(extra.stage, CALL_MS),
    grpcStatus.RESOURCE_EXHAUSTED,
    /nbd devices are in use/,
  );
  s.facts.refusal = refused.details;
  assert.equal(await readVolumeState(s.env, extra.stage.volume_id), null);
  await assert.rejects(
    Deno.lstat(volumeStateDir(s.env, extra.stage.volume_id)),
    Deno.errors.NotFound,
    "no half-created state directory for the refused volume",
  );
  const after = await findLeftovers(s.env);
  assert.deepEqual(after, before, "the refused stage left nothing (process, mount, socket, dir)");
  assert.deepEqual(await servingProcesses(), servingBefore, "no extra process");
  for (const device of staged) assert.ok(!((await readNbd(device)).sizeSectors === 0), device);

  const firstProcesses = await volumeProcesses(s.env, reqs[0].stage.volume_id);
  await s.unstage(reqs[0], staged[0], firstProcesses);
  const extraDevice = await s.stage(extra);
  assert.equal(extraDevice, staged[0], "the fifth volume gets the freed device");
  s.facts.devices = [...staged, extraDevice];

  for (const [i, req] of reqs.entries()) {
    if (i === 0) continue;
    const device = i === devices ? extraDevice : staged[i];
    await s.unstage(req, device, await volumeProcesses(s.env, req.stage.volume_id));
  }
  await assertAllNbdFree();
  for (const req of reqs) {
    await s.env.controller.client.controller.DeleteVolume(
      { volume_id: req.stage.volume_id },
      CALL_MS,
    );
  }
}

/**
 * Drill 4: `cycles` stage/unstage cycles of one ext4 volume. Each cycle reads
 * back what every earlier cycle wrote and writes (and syncs) a file of its
 * own: formatted once, data kept. After each unstage the device is free; at
 * the end every nbd device is free, nothing is mounted and no ZeroFS or
 * nbd-client process is left.
 */
export async function stageCycles(s: Scenario, cycles: number): Promise<void> {
  const name = "pvc-vm-cycles";
  const volume = await createVolume(s.env.controller.client, {
    name,
    kind: "ext4",
    sizeBytes: GiB,
  });
  const req = s.requests(volume, "ext4");
  const cycleMs: number[] = [];
  const devices = new Set<string>();
  const written = new Map<string, Uint8Array>();
  /** Every file written so far is listed; `check`'s contents read back as written. */
  const assertFiles = async (when: string, check: string[]) => {
    const names: string[] = [];
    for await (const e of Deno.readDir(req.staging)) {
      if (e.name.endsWith(".bin")) names.push(e.name);
    }
    assert.deepEqual(names.sort(), [...written.keys()].sort(), `${when}: the files written`);
    for (const file of check) await assertContent(join(req.staging, file), written.get(file)!);
  };
  for (let i = 0; i < cycles; i++) {
    const t0 = performance.now();
    const device = await s.stage(req);
    devices.add(device);
    // Read back the first cycle's file and the last one's (written before the last unstage).
    await assertFiles(
      `cycle ${i}`,
      i === 0 ? [] : [...new Set(["cycle-0.bin", `cycle-${i - 1}.bin`])],
    );
    const file = `cycle-${i}.bin`;
    written.set(file, randomBytes(16 * 1024));
    await writeFileSynced(join(req.staging, file), written.get(file)!);
    await s.node.NodeUnstageVolume(req.unstage, CALL_MS);
    await assertNbdFree(device);
    assert.equal(await findMountByTarget(req.staging), undefined, `cycle ${i}: still mounted`);
    cycleMs.push(Math.round(performance.now() - t0));
  }
  const last = await s.stage(req);
  await assertFiles("after the last cycle", [...written.keys()]);
  await s.node.NodeUnstageVolume(req.unstage, CALL_MS);
  await assertNbdFree(last);
  await assertAllNbdFree();
  const left = await findLeftovers(s.env);
  assert.deepEqual(left, {
    loopDevices: [],
    mounts: [],
    processes: [],
    sockets: [],
    volumeDirs: [],
  });
  assert.deepEqual(await servingProcesses(), [], "no ZeroFS or nbd-client left");
  const formats = s.env.node.output().split("\n").filter((l) =>
    l.includes("formatting new volume") && l.includes(name)
  );
  // The files above prove no reformat lost data; the log says mkfs ran exactly once.
  assert.equal(formats.length, 1, "formatted once in all the cycles");
  await s.env.controller.client.controller.DeleteVolume({ volume_id: name }, CALL_MS);
  Object.assign(s.facts, {
    cycles,
    devices: [...devices],
    cycleMsMedian: cycleMs.toSorted((a, b) => a - b)[Math.floor(cycles / 2)],
    cycleMsMax: Math.max(...cycleMs),
  });
}
