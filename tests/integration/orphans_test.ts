/**
 * The orphan scan on a real host: a loop device on a file under the state dir
 * and a mount in a volume directory no record names (what a crash between an
 * effect and its record leaves). The restarted agent logs one warning per
 * orphan and its gauge counts them; `doctor` lists them; neither removes
 * them — the test does, then checks they are really gone.
 *
 * Run as root: `deno test -A tests/integration/orphans_test.ts`.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { findMountByTarget, loopBackingFile, runTool } from "../../blockdev/mod.ts";
import { formatDoctorReport, runDoctor } from "../../csi/mod.ts";
import { withNodeEnvironment } from "../helpers/node_env.ts";
import { createVolume, nodeRequests } from "../helpers/volume_steps.ts";

const TIMEOUT_MS = 10_000;

async function scrape(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(res.status, 200);
  return await res.text();
}

function orphanLines(output: string): { kind: string; what: string }[] {
  return output.split("\n").filter((l) => l.includes('"orphan: no volume record owns it'))
    .map((l) => JSON.parse(l));
}

Deno.test("orphans: a loop device and a mount no record owns are logged, counted, listed by doctor and left alone", async () => {
  await withNodeEnvironment(async (env) => {
    const lostDir = join(env.stateDir, "v", "0123456789abcdef");
    const backing = join(lostDir, "nbdfuse", "nbd");
    const mountPoint = join(lostDir, "mnt");
    await Deno.mkdir(join(lostDir, "nbdfuse"), { recursive: true });
    await Deno.mkdir(mountPoint);
    await Deno.writeFile(backing, new Uint8Array(1 << 20));
    const { stdout } = await runTool("losetup", ["--find", "--show", backing], {
      timeoutMs: TIMEOUT_MS,
    });
    const loop = stdout.trim();
    try {
      await runTool("mount", ["-t", "tmpfs", "-o", "size=1m", "orphan-test", mountPoint], {
        timeoutMs: TIMEOUT_MS,
      });
      try {
        await env.node.stop();
        const node = await env.restartNode();
        const line = await node.waitForOutput(/metrics endpoint serving/);
        const found = orphanLines(node.output()).map((o) => [o.kind, o.what]);
        assert.deepEqual(found, [["loop", loop], ["mount", mountPoint]]);

        const metrics = await scrape(JSON.parse(line).port as number);
        assert.match(metrics, /^zerofs_csi_orphans\{kind="loop"\} 1$/m);
        assert.match(metrics, /^zerofs_csi_orphans\{kind="mount"\} 1$/m);
        assert.match(metrics, /^zerofs_csi_orphans\{kind="nbd"\} 0$/m);

        const report = await runDoctor({ stateDir: env.stateDir, attachMode: "userspace" });
        const check = report.checks.find((c) => c.name === "orphans");
        assert.ok(check, formatDoctorReport(report));
        assert.equal(check.ok, false);
        assert.equal(check.severity, "warning");
        assert.match(check.detail, new RegExp(`loop ${loop}: backed by ${backing}`));
        assert.match(check.detail, new RegExp(`mount ${mountPoint}: tmpfs mount`));

        // Reported, not removed.
        assert.equal(await loopBackingFile(loop), backing);
        assert.ok(await findMountByTarget(mountPoint));
      } finally {
        await runTool("umount", [mountPoint], { timeoutMs: TIMEOUT_MS });
      }
    } finally {
      await runTool("losetup", ["-d", loop], { timeoutMs: TIMEOUT_MS });
    }
    assert.equal(await findMountByTarget(mountPoint), undefined);
    await Deno.remove(lostDir, { recursive: true });
    const clean = await runDoctor({ stateDir: env.stateDir, attachMode: "userspace" });
    assert.equal(clean.checks.find((c) => c.name === "orphans")?.ok, true);
  }, { attachMode: "userspace", extraNodeArgs: ["--metrics-address", "127.0.0.1:0"] });
});

Deno.test("orphans: a staged and published volume is owned by its record, so none is reported", async () => {
  await withNodeEnvironment(async (env) => {
    const volume = await createVolume(env.controller.client, {
      name: "pvc-owned",
      kind: "ext4",
      sizeBytes: 1 << 30,
    });
    const req = nodeRequests(volume, { kind: "ext4", kubeletDir: env.kubeletDir });
    await env.node.client.node.NodeStageVolume(req.stage);
    await env.node.client.node.NodePublishVolume(req.publish);

    await env.node.stop();
    const node = await env.restartNode();
    const line = await node.waitForOutput(/metrics endpoint serving/);
    assert.match(node.output(), /re-adopted staged volume/);
    assert.deepEqual(orphanLines(node.output()), []);
    const metrics = await scrape(JSON.parse(line).port as number);
    for (const kind of ["nbd", "loop", "fuse", "mount", "zerofs"]) {
      assert.match(metrics, new RegExp(`^zerofs_csi_orphans\\{kind="${kind}"\\} 0$`, "m"));
    }
    const report = await runDoctor({ stateDir: env.stateDir, attachMode: "userspace" });
    assert.equal(report.checks.find((c) => c.name === "orphans")?.ok, true);

    await node.client.node.NodeUnpublishVolume(req.unpublish);
    await node.client.node.NodeUnstageVolume(req.unstage);
  }, { attachMode: "userspace", extraNodeArgs: ["--metrics-address", "127.0.0.1:0"] });
});
