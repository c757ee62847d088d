/**
 * `runDoctor` against this machine's real /sys, /dev, /proc and host tools.
 *
 * Decision: without the nbd module, `auto` mode reports it as a WARNING (the
 * node works through the userspace fallback, whose prerequisites become
 * errors), `kernel` mode as an ERROR, `userspace` mode as a note. This host
 * has no nbd module; a host that has one takes the kernel branch, asserted
 * just as strictly.
 */

import assert from "node:assert/strict";
import { isKernelModuleAvailable } from "../../blockdev/mod.ts";
import {
  checkStatus,
  type DoctorCheck,
  type DoctorReport,
  formatDoctorReport,
  HOST_TOOLS,
  runDoctor,
} from "../../csi/mod.ts";

async function withStateRoot(fn: (root: string) => Promise<void>): Promise<void> {
  await Deno.mkdir("/run/zerofs-csi", { recursive: true });
  const root = await Deno.makeTempDir({ dir: "/run/zerofs-csi", prefix: "test-" });
  try {
    await fn(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

function check(report: DoctorReport, name: string): DoctorCheck {
  const found = report.checks.find((c) => c.name === name);
  assert.ok(found, `no check "${name}"`);
  return found;
}

async function nbdOnThisHost(): Promise<boolean> {
  try {
    await Deno.stat("/sys/module/nbd");
    return true;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return await isKernelModuleAvailable("nbd");
}

function assertToolsPresent(report: DoctorReport): void {
  for (const t of HOST_TOOLS) {
    const c = check(report, `tool ${t.tool}`);
    assert.ok(c.ok, `${c.name}: ${c.detail}. ${c.fix ?? ""}`);
    assert.match(c.detail, /\d/, `${c.name} reported no version: ${c.detail}`);
  }
}

Deno.test("doctor on this host: auto mode, nbd state, tools with versions, a readable table", async () => {
  await withStateRoot(async (root) => {
    const stateDir = `${root}/state`;
    const report = await runDoctor({ stateDir });
    const nbd = check(report, "nbd kernel module");
    assert.equal(nbd.severity, "warning");
    if (await nbdOnThisHost()) {
      assert.equal(report.attachMode, "kernel");
      assert.ok(nbd.ok, nbd.detail);
    } else {
      assert.equal(report.attachMode, "userspace");
      assert.equal(nbd.ok, false);
      assert.match(nbd.detail, /not available to modprobe .*falls back to userspace/);
      assert.match(nbd.fix ?? "", /nbdfuse \+ loop \+ FUSE/);
      for (const name of ["/dev/fuse", "/dev/loop-control"]) {
        const c = check(report, name);
        assert.deepEqual([c.ok, c.severity], [true, "error"], `${name}: ${c.detail}`);
      }
    }
    assertToolsPresent(report);
    assert.ok(check(report, "running as root").ok, "integration tests run as root");
    assert.ok(check(report, "filesystem ext4").ok);
    assert.ok(check(report, "socket path length").ok);
    const state = check(report, "state dir");
    assert.ok(state.ok, state.detail);
    assert.match(state.detail, /will be created/);
    const errors = report.checks.filter((c) => !c.ok && c.severity === "error");
    assert.deepEqual(errors, []);
    assert.equal(report.ok, true);

    const table = formatDoctorReport(report);
    const lines = table.split("\n");
    assert.match(lines[2], /^STATUS {2}CHECK +DETAIL$/);
    const nbdRow = lines.find((l) => l.includes("nbd kernel module"));
    assert.ok(nbdRow?.startsWith(checkStatus(nbd)), String(nbdRow));
    assert.equal(report.checks.length, lines.filter((l) => /^(ok|FAIL|WARN|info) /.test(l)).length);
    assert.match(table, /^OK: 0 error\(s\)/m);
  });
});

Deno.test("doctor on this host: kernel mode fails exactly when nbd is missing", async () => {
  await withStateRoot(async (root) => {
    const report = await runDoctor({ stateDir: `${root}/state`, attachMode: "kernel" });
    const nbd = check(report, "nbd kernel module");
    assert.equal(nbd.severity, "error");
    if (await nbdOnThisHost()) {
      assert.ok(nbd.ok, nbd.detail);
    } else {
      assert.equal(nbd.ok, false);
      assert.equal(report.ok, false);
      assert.match(nbd.fix ?? "", /--attach-mode=userspace/);
      assert.match(formatDoctorReport(report), /^FAIL {4}nbd kernel module/m);
      assert.match(formatDoctorReport(report), /^NOT READY: /m);
    }
  });
});

Deno.test("doctor on this host: userspace mode is ready, and an existing private state dir passes", async () => {
  await withStateRoot(async (root) => {
    const stateDir = `${root}/state`;
    await Deno.mkdir(stateDir);
    await Deno.chmod(stateDir, 0o700);
    const report = await runDoctor({ stateDir, attachMode: "userspace" });
    assert.equal(report.attachMode, "userspace");
    assertToolsPresent(report);
    assert.equal(check(report, "nbd kernel module").severity, "info");
    assert.equal(check(report, "state dir").detail, `${stateDir} exists, mode 0700, owner root`);
    assert.equal(report.ok, true, formatDoctorReport(report));
  });
});
