/**
 * Operability through the commands an operator runs: the metrics endpoint
 * scraped after a lifecycle, `zerofs-csi status` (table and JSON) against a
 * staged volume, `doctor` on this machine, and `detach` then `attach` from
 * the shell keeping the volume's data.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { pathExists } from "../../blockdev/mod.ts";
import { runNodeCli, withNodeEnvironment } from "../helpers/node_env.ts";
import { createVolume, nodeRequests } from "../helpers/volume_steps.ts";

const GIB = 1024 ** 3;

/** Parse Prometheus text into `name{labels}` → value (HELP/TYPE lines skipped). */
function parseMetrics(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    assert.ok(match, `not a Prometheus sample line: ${line}`);
    samples.set(match[1], Number(match[2]));
  }
  return samples;
}

async function scrape(port: number): Promise<Map<string, number>> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  return parseMetrics(await res.text());
}

function sample(samples: Map<string, number>, name: string, labels: string[] = []): number {
  for (const [key, value] of samples) {
    if (!key.startsWith(name)) continue;
    if (key !== name && !key.startsWith(`${name}{`)) continue;
    if (labels.every((l) => key.includes(l))) return value;
  }
  throw new Error(`no sample ${name} with ${labels.join(",")}`);
}

Deno.test("metrics: scraped after a lifecycle, RPC histogram and node gauges are true", async () => {
  await withNodeEnvironment(async (env) => {
    const line = await env.node.waitForOutput(/metrics endpoint serving/);
    const port = JSON.parse(line).port as number;
    const volume = await createVolume(env.controller.client, {
      name: "pvc-metrics",
      kind: "ext4",
      sizeBytes: GIB,
    });
    const req = nodeRequests(volume, { kind: "ext4", kubeletDir: env.kubeletDir });
    const node = env.node.client.node;
    await node.NodeStageVolume(req.stage);
    await node.NodePublishVolume(req.publish);
    await node.NodePublishVolume({ ...req.publish, volume_id: "pvc-metrics-unknown" }).catch(
      () => {},
    );

    const staged = await scrape(port);
    const stage = ['method_name="/csi.v1.Node/NodeStageVolume"', 'grpc_status_code="OK"'];
    assert.equal(sample(staged, "csi_plugin_operations_seconds_count", stage), 1);
    assert.equal(
      sample(staged, "csi_plugin_operations_seconds_bucket", [...stage, 'le="+Inf"']),
      1,
    );
    assert.equal(
      sample(staged, "csi_plugin_operations_seconds_count", [
        'method_name="/csi.v1.Node/NodePublishVolume"',
        'grpc_status_code="FailedPrecondition"',
      ]),
      1,
    );
    assert.equal(sample(staged, "zerofs_csi_volumes_staged"), 1);
    assert.equal(sample(staged, "zerofs_csi_nbd_devices_in_use"), 1);
    assert.ok(sample(staged, "zerofs_csi_nbd_devices_available") > 0);
    assert.equal(sample(staged, "zerofs_csi_zerofs_instances", ['state="ready"']), 1);
    assert.equal(sample(staged, "zerofs_csi_zerofs_instances", ['state="not_ready"']), 0);
    assert.equal(sample(staged, "zerofs_csi_volumes_abnormal"), 0);

    await node.NodeUnpublishVolume(req.unpublish);
    await node.NodeUnstageVolume(req.unstage);
    const after = await scrape(port);
    assert.equal(sample(after, "zerofs_csi_volumes_staged"), 0);
    assert.equal(sample(after, "zerofs_csi_nbd_devices_in_use"), 0);
    assert.equal(
      sample(after, "csi_plugin_operations_seconds_count", [
        'method_name="/csi.v1.Node/NodeUnstageVolume"',
        'grpc_status_code="OK"',
      ]),
      1,
    );
  }, { extraNodeArgs: ["--metrics-address", "127.0.0.1:0"] });
});

Deno.test("status shows a staged volume as a table and as JSON; detach then attach keeps the data", async () => {
  await withNodeEnvironment(async (env) => {
    const volume = await createVolume(env.controller.client, {
      name: "pvc-status",
      kind: "ext4",
      sizeBytes: GIB,
    });
    const req = nodeRequests(volume, { kind: "ext4", kubeletDir: env.kubeletDir });
    await env.node.client.node.NodeStageVolume(req.stage);
    await Deno.writeTextFile(join(req.staging, "kept.txt"), "still here");

    const json = await runNodeCli(env, ["status", "--state-dir", env.stateDir, "--json"]);
    assert.equal(json.code, 0, json.stderr);
    const rows = JSON.parse(json.stdout);
    assert.equal(rows.length, 1);
    const [row] = rows;
    assert.equal(row.volumeId, "pvc-status");
    assert.equal(row.phase, "staged");
    assert.equal(row.access, "ext4");
    assert.equal(row.zerofs.ready, true);
    assert.ok(row.zerofs.pid > 0);
    assert.match(row.device, /^\/dev\/loop\d+$/);
    assert.equal(row.deviceConnected, true);
    assert.equal(row.deviceSizeBytes, GIB);
    assert.equal(row.mounted, true);
    assert.equal(row.stagingPath, req.staging);
    assert.deepEqual(row.condition, { abnormal: false, message: "volume is healthy" });

    const table = await runNodeCli(env, ["status", "--state-dir", env.stateDir]);
    assert.equal(table.code, 0, table.stderr);
    const [head, line] = table.stdout.trim().split("\n");
    assert.match(head, /^VOLUME +PHASE +ACCESS +ZEROFS +DEVICE +SIZE +MOUNT +PODS +CONDITION$/);
    assert.match(
      line,
      new RegExp(
        `^pvc-status +staged +ext4 +ready pid \\d+ +${row.device} +1 GiB +${req.staging} +0 +ok$`,
      ),
    );

    // Recover without Kubernetes: detach and attach from the shell, same code as unstage/stage.
    const detach = await runNodeCli(env, [
      "detach",
      "--state-dir",
      env.stateDir,
      "--volume-id",
      "pvc-status",
    ]);
    assert.equal(detach.code, 0, detach.stderr);
    assert.match(detach.stdout, /unstaged: unmounted, device free, ZeroFS stopped/);
    await assert.rejects(Deno.stat(join(req.staging, "kept.txt")));
    const attachArgs = [
      "attach",
      "--state-dir",
      env.stateDir,
      "--settings-file",
      join(env.dir, "settings.toml"),
      "--volume-id",
      "pvc-status",
      "--staging-path",
      req.staging,
      "--fs-type",
      "ext4",
    ];
    // The verb is confined like the node agent: this staging path is not below the
    // default kubelet directory, so it is refused before anything starts.
    const outside = await runNodeCli(env, attachArgs);
    assert.equal(outside.code, 1, outside.stderr);
    assert.match(
      outside.stderr,
      /staging_target_path ".*" is not inside the kubelet directory \/var\/lib\/kubelet/,
    );
    const refusedStatus = await runNodeCli(env, ["status", "--state-dir", env.stateDir]);
    assert.equal(refusedStatus.stdout.trim(), "No volumes are staged on this node.");
    const attach = await runNodeCli(env, [...attachArgs, "--kubelet-dir", env.kubeletDir]);
    assert.equal(attach.code, 0, attach.stderr);
    assert.doesNotMatch(attach.stderr, /formatting new volume/);
    assert.equal(await Deno.readTextFile(join(req.staging, "kept.txt")), "still here");
    const again = await runNodeCli(env, [
      "detach",
      "--state-dir",
      env.stateDir,
      "--volume-id",
      "pvc-status",
    ]);
    assert.equal(again.code, 0, again.stderr);
    const empty = await runNodeCli(env, ["status", "--state-dir", env.stateDir]);
    assert.equal(empty.stdout.trim(), "No volumes are staged on this node.");
  });
});

Deno.test("doctor on this machine: reports the missing nbd module and exits cleanly", async () => {
  await withNodeEnvironment(async (env) => {
    const auto = await runNodeCli(env, ["doctor", "--state-dir", env.stateDir]);
    const kernel = await runNodeCli(env, [
      "doctor",
      "--state-dir",
      env.stateDir,
      "--attach-mode",
      "kernel",
    ]);
    const hasNbd = await pathExists("/sys/module/nbd");
    for (const run of [auto, kernel]) {
      assert.match(run.stdout, /nbd kernel module/);
      assert.match(run.stdout, /tool mkfs\.ext4 +mke2fs/);
      assert.doesNotMatch(run.stderr, /error:|Uncaught/);
    }
    if (hasNbd) {
      assert.equal(kernel.code, 0, kernel.stdout);
    } else {
      assert.equal(auto.code, 0, auto.stdout);
      assert.match(auto.stdout, /^WARN +nbd kernel module .*falls back to userspace/m);
      assert.equal(kernel.code, 1, kernel.stdout);
      assert.match(kernel.stdout, /^FAIL +nbd kernel module/m);
    }
  });
});
