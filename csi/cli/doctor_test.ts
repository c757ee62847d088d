import assert from "node:assert/strict";
import { dirname } from "node:path";
import {
  NodeLock,
  type Runner,
  type RunResult,
  selectAttacher,
  ToolError,
} from "../../blockdev/mod.ts";
import {
  type DoctorCheck,
  type DoctorOptions,
  type DoctorReport,
  formatDoctorReport,
  HOST_TOOLS,
  runDoctor,
  toolVersion,
} from "./doctor.ts";

type Answer = Partial<RunResult> | "missing" | "timeout";

/**
 * A runner answering by argv (`"modprobe -n -q nbd"`, `"mkfs.xfs -V"` or just
 * the tool name). Unscripted version calls print `<tool> 9.9`; unscripted
 * `modprobe -n` answers "not found". Behaves like runTool on exit codes.
 */
function fakeRunner(answers: Record<string, Answer> = {}): { runner: Runner; calls: string[] } {
  const calls: string[] = [];
  const runner: Runner = (tool, args, opts) => {
    const argv = [tool, ...args].join(" ");
    calls.push(argv);
    const answer = answers[argv] ?? answers[tool] ??
      (tool === "modprobe" && args[0] === "-n" ? { exitCode: 1 } : { stdout: `${tool} 9.9\n` });
    if (answer === "missing") {
      return Promise.reject(
        new ToolError(tool, args, null, `Failed to spawn '${tool}': No such file`),
      );
    }
    if (answer === "timeout") return Promise.reject(new ToolError(tool, args, null, "", true));
    const result: RunResult = { exitCode: 0, stdout: "", stderr: "", ...answer };
    if (result.exitCode !== 0 && !(opts?.okExitCodes ?? []).includes(result.exitCode)) {
      return Promise.reject(new ToolError(tool, args, result.exitCode, result.stderr));
    }
    return Promise.resolve(result);
  };
  return { runner, calls };
}

interface FakeNode {
  root: string;
  sys: string;
  dev: string;
  proc: string;
}

interface FakeNodeSpec {
  nbdDevices?: number;
  nbdLoaded?: boolean;
  fuse?: boolean;
  loopControl?: boolean;
  filesystems?: string[];
  mountInfo?: string;
}

const ROOT_MOUNT = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n";

async function withFakeNode(spec: FakeNodeSpec, fn: (node: FakeNode) => Promise<void>) {
  await Deno.mkdir("/run/zerofs-csi", { recursive: true });
  const root = await Deno.makeTempDir({ dir: "/run/zerofs-csi", prefix: "test-" });
  try {
    const node = { root, sys: `${root}/sys`, dev: `${root}/dev`, proc: `${root}/proc` };
    await Deno.mkdir(`${node.sys}/block`, { recursive: true });
    await Deno.mkdir(node.dev);
    await Deno.mkdir(`${node.proc}/self`, { recursive: true });
    await Deno.mkdir(`${node.proc}/sys/kernel`, { recursive: true });
    await Deno.writeTextFile(`${node.proc}/sys/kernel/osrelease`, "6.1.0-test\n");
    await Deno.writeTextFile(`${node.proc}/self/mountinfo`, spec.mountInfo ?? ROOT_MOUNT);
    await Deno.writeTextFile(
      `${node.proc}/filesystems`,
      (spec.filesystems ?? ["ext4", "xfs", "btrfs"]).map((fs) => `\t${fs}\n`).join("") +
        "nodev\tproc\n",
    );
    if (spec.nbdLoaded) {
      await Deno.mkdir(`${node.sys}/module/nbd/parameters`, { recursive: true });
      await Deno.writeTextFile(
        `${node.sys}/module/nbd/parameters/nbds_max`,
        `${spec.nbdDevices ?? 0}\n`,
      );
    }
    for (let i = 0; i < (spec.nbdDevices ?? 0); i++) {
      await Deno.mkdir(`${node.sys}/block/nbd${i}`);
      await Deno.writeTextFile(`${node.dev}/nbd${i}`, "");
    }
    // Character devices without mknod: symlinks to real ones (stat follows them).
    if (spec.fuse ?? true) await Deno.symlink("/dev/null", `${node.dev}/fuse`);
    if (spec.loopControl ?? true) await Deno.symlink("/dev/null", `${node.dev}/loop-control`);
    await fn(node);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

function options(node: FakeNode, more: Partial<DoctorOptions> = {}): DoctorOptions {
  return {
    stateDir: `${node.root}/state`,
    sysRoot: node.sys,
    devRoot: node.dev,
    procRoot: node.proc,
    uid: 0,
    runner: fakeRunner().runner,
    ...more,
  };
}

function check(report: DoctorReport, name: string): DoctorCheck {
  const found = report.checks.find((c) => c.name === name);
  assert.ok(found, `no check "${name}" in ${report.checks.map((c) => c.name).join(", ")}`);
  return found;
}

function failed(report: DoctorReport): string[] {
  return report.checks.filter((c) => !c.ok).map((c) => `${c.severity}:${c.name}`);
}

Deno.test("toolVersion runs the tool's version flag with a short timeout and keeps the first line", async () => {
  const { runner, calls } = fakeRunner({
    "mkfs.xfs -V": { stdout: "mkfs.xfs version 6.1.0\n" },
    "resize2fs": { exitCode: 1, stderr: "resize2fs 1.47.0 (5-Feb-2023)\nUsage: resize2fs …\n" },
  });
  assert.equal(await toolVersion("mkfs.xfs", { runner }), "mkfs.xfs version 6.1.0");
  assert.equal(await toolVersion("resize2fs", { runner }), "resize2fs 1.47.0 (5-Feb-2023)");
  assert.deepEqual(calls, ["mkfs.xfs -V", "resize2fs"]);
  await assert.rejects(toolVersion("rm", { runner }), /not a known host tool/);
  const timeouts: (number | undefined)[] = [];
  const timing: Runner = (_tool, _args, opts) => {
    timeouts.push(opts?.timeoutMs);
    return Promise.resolve({ exitCode: 0, stdout: "v1\n", stderr: "" });
  };
  await toolVersion("blkid", { runner: timing });
  await toolVersion("blkid", { runner: timing, timeoutMs: 250 });
  assert.deepEqual(timeouts, [5000, 250]);
});

Deno.test("a kernel-capable node: auto picks kernel, reports devices and tool versions", async () => {
  await withFakeNode({ nbdLoaded: true, nbdDevices: 4 }, async (node) => {
    const { runner, calls } = fakeRunner({
      "nbd-client --version": { stdout: "This is nbd-client, from nbd 3.24\n" },
    });
    const report = await runDoctor(options(node, { runner }));
    assert.equal(report.attachMode, "kernel");
    assert.equal(report.requestedAttachMode, "auto");
    assert.deepEqual(failed(report), []);
    assert.equal(report.ok, true);
    assert.equal(check(report, "nbd kernel module").detail, "loaded, nbds_max=4");
    assert.match(check(report, "nbd devices").detail, /max volumes on this node: 4/);
    assert.equal(check(report, "tool nbd-client").detail, "This is nbd-client, from nbd 3.24");
    assert.equal(check(report, "tool nbdfuse").severity, "info");
    assert.ok(!calls.includes("modprobe -n -q nbd"), "a loaded module needs no modprobe");
    for (const t of HOST_TOOLS) {
      assert.ok(calls.includes([t.tool, ...t.versionArgs].join(" ")), `${t.tool} not asked`);
    }
  });
});

Deno.test("no nbd in auto mode: a warning, and the userspace fallback is what must work", async () => {
  await withFakeNode({}, async (node) => {
    const { runner, calls } = fakeRunner();
    const report = await runDoctor(options(node, { runner }));
    assert.ok(calls.includes("modprobe -n -q nbd"));
    assert.equal(report.attachMode, "userspace");
    assert.equal(report.ok, true);
    const nbd = check(report, "nbd kernel module");
    assert.equal(nbd.ok, false);
    assert.equal(nbd.severity, "warning");
    assert.match(nbd.detail, /kernel 6\.1\.0-test.*falls back to userspace/);
    assert.match(nbd.fix ?? "", /nbdfuse \+ loop \+ FUSE/);
    assert.equal(check(report, "/dev/fuse").severity, "error");
    assert.equal(check(report, "tool nbdfuse").severity, "error");
    assert.equal(check(report, "tool nbd-client").severity, "info");
  });
  await withFakeNode({ fuse: false }, async (node) => {
    const report = await runDoctor(options(node));
    assert.equal(report.ok, false);
    assert.deepEqual(failed(report), [
      "warning:nbd kernel module",
      "info:nbd devices",
      "error:/dev/fuse",
    ]);
    assert.match(check(report, "/dev/fuse").fix ?? "", /modprobe fuse/);
  });
});

Deno.test("a loadable nbd module makes auto pick kernel; devices appear on load", async () => {
  await withFakeNode({ loopControl: false }, async (node) => {
    const { runner } = fakeRunner({ "modprobe -n -q nbd": { exitCode: 0 } });
    const report = await runDoctor(options(node, { runner }));
    assert.equal(report.attachMode, "kernel");
    assert.equal(report.ok, true);
    assert.match(check(report, "nbd kernel module").detail, /modprobe can load it/);
    assert.match(check(report, "nbd devices").detail, /created when the module is loaded/);
    assert.deepEqual(failed(report), ["info:/dev/loop-control"]);
  });
});

Deno.test("auto: doctor reports the attach mode the node agent picks on the same host", async () => {
  const hosts: { name: string; spec: FakeNodeSpec; answers?: Record<string, Answer> }[] = [
    { name: "no nbd", spec: {} },
    { name: "nbd loaded", spec: { nbdLoaded: true, nbdDevices: 2 } },
    { name: "/dev/nbd0 only", spec: { nbdDevices: 1 } },
    { name: "nbd loadable", spec: {}, answers: { "modprobe -n -q nbd": { exitCode: 0 } } },
  ];
  const picked: string[] = [];
  for (const host of hosts) {
    await withFakeNode(host.spec, async (node) => {
      const report = await runDoctor(options(node, { runner: fakeRunner(host.answers).runner }));
      const agent = await selectAttacher({
        mode: "auto",
        lock: new NodeLock(`${node.root}/node.lock`),
        runner: fakeRunner(host.answers).runner,
        devRoot: node.dev,
        sysRoot: node.sys,
      });
      assert.equal(report.attachMode, agent.mode, host.name);
      picked.push(`${host.name}: ${agent.mode}`);
    });
  }
  assert.deepEqual(picked, [
    "no nbd: userspace",
    "nbd loaded: kernel",
    "/dev/nbd0 only: kernel",
    "nbd loadable: kernel",
  ]);
});

Deno.test("auto with a failing modprobe: the agent refuses to start, doctor says so", async () => {
  await withFakeNode({}, async (node) => {
    const answers: Record<string, Answer> = { "modprobe -n -q nbd": { exitCode: 2, stderr: "x" } };
    const agent = selectAttacher({
      mode: "auto",
      lock: new NodeLock(`${node.root}/node.lock`),
      runner: fakeRunner(answers).runner,
      devRoot: node.dev,
      sysRoot: node.sys,
    });
    await assert.rejects(agent, /modprobe exited with code 2/);
    const report = await runDoctor(options(node, { runner: fakeRunner(answers).runner }));
    assert.equal(report.ok, false);
    const nbd = check(report, "nbd kernel module");
    assert.deepEqual([nbd.ok, nbd.severity], [false, "error"]);
    assert.match(nbd.detail, /cannot choose an attach mode and will not start/);
  });
});

Deno.test("kernel mode without nbd is an error that names the fix", async () => {
  await withFakeNode({}, async (node) => {
    const report = await runDoctor(options(node, { attachMode: "kernel" }));
    assert.equal(report.ok, false);
    assert.equal(report.attachMode, "kernel");
    assert.deepEqual(failed(report), ["error:nbd kernel module", "error:nbd devices"]);
    assert.match(check(report, "nbd kernel module").fix ?? "", /modprobe nbd nbds_max=64/);
  });
});

Deno.test("a loaded module without devices is an error", async () => {
  await withFakeNode({ nbdLoaded: true, nbdDevices: 0 }, async (node) => {
    const report = await runDoctor(options(node, { attachMode: "kernel" }));
    assert.equal(report.ok, false);
    assert.deepEqual(failed(report), ["error:nbd devices"]);
    assert.match(check(report, "nbd devices").fix ?? "", /nbds_max=64/);
  });
});

Deno.test("missing tools are named with their Debian package; severity follows need", async () => {
  await withFakeNode({ nbdLoaded: true, nbdDevices: 2 }, async (node) => {
    const { runner } = fakeRunner({
      blkid: "missing",
      "mkfs.xfs": "missing",
      nbdfuse: "missing",
      "mkfs.btrfs": "timeout",
    });
    const report = await runDoctor(options(node, { runner }));
    assert.equal(report.ok, false);
    assert.deepEqual(failed(report), [
      "info:tool nbdfuse",
      "error:tool blkid",
      "warning:tool mkfs.xfs",
      "warning:tool mkfs.btrfs",
    ]);
    assert.equal(
      check(report, "tool blkid").fix,
      "apt-get install util-linux (or add it to the node image).",
    );
    assert.match(check(report, "tool mkfs.xfs").fix ?? "", /apt-get install xfsprogs/);
    assert.match(check(report, "tool nbdfuse").fix ?? "", /apt-get install libnbd-bin/);
    assert.match(
      check(report, "tool mkfs.btrfs").detail,
      /present but "mkfs.btrfs --version" failed/,
    );
  });
});

Deno.test("kernel filesystems: listed, loadable as a module, or missing", async () => {
  await withFakeNode({ filesystems: ["ext4"] }, async (node) => {
    const { runner } = fakeRunner({ "modprobe -n -q xfs": { exitCode: 0 } });
    const report = await runDoctor(options(node, { runner }));
    assert.equal(
      check(report, "filesystem ext4").detail,
      "in /proc/filesystems (the default fsType)",
    );
    assert.match(check(report, "filesystem xfs").detail, /^loadable module/);
    assert.equal(check(report, "filesystem xfs").ok, true);
    const btrfs = check(report, "filesystem btrfs");
    assert.deepEqual([btrfs.ok, btrfs.severity], [false, "warning"]);
    assert.equal(report.ok, true);
  });
  await withFakeNode({ filesystems: ["xfs"] }, async (node) => {
    const report = await runDoctor(options(node));
    assert.equal(report.ok, false);
    assert.equal(check(report, "filesystem ext4").severity, "error");
    assert.equal(check(report, "filesystem ext4").ok, false);
  });
});

/**
 * Can a unix socket really be bound at `path`? An answer independent of the
 * doctor: sun_path holds 108 bytes with the NUL, and a longer path is refused.
 */
async function kernelBindsSocketAt(path: string): Promise<boolean> {
  await Deno.mkdir(dirname(path), { recursive: true });
  let listener: Deno.Listener;
  try {
    listener = Deno.listen({ transport: "unix", path });
  } catch {
    return false;
  }
  listener.close();
  await Deno.remove(path).catch(() => {}); // close() may already have removed it
  return true;
}

/** A state dir of exactly `bytes` bytes under `root` (padded with "d"). */
function stateDirOfLength(root: string, bytes: number): string {
  return `${root}/${"d".repeat(bytes - root.length - 1)}`;
}

Deno.test("a state dir too long for unix sockets is an error with the length to use", async () => {
  await withFakeNode({}, async (node) => {
    // A volume's longest socket is <state dir>/v/<16 hex digits>/nbd.sock: 28 bytes more
    // than the state dir (zerofs/paths.ts), so 107 - 28 = 79 bytes is the longest that fits.
    const longestFitting = 79;
    const socketOf = (stateDir: string) => `${stateDir}/v/0123456789abcdef/nbd.sock`;
    const fits = stateDirOfLength(node.root, longestFitting);
    const tooLong = stateDirOfLength(node.root, longestFitting + 1);
    // A real bind agrees, independently of the doctor.
    assert.equal(await kernelBindsSocketAt(socketOf(fits)), true, "79 bytes fit");
    assert.equal(await kernelBindsSocketAt(socketOf(tooLong)), false, "80 bytes do not");

    const over = check(await runDoctor(options(node, { stateDir: tooLong })), "socket path length");
    assert.deepEqual([over.ok, over.severity], [false, "error"]);
    assert.match(over.detail, /is 108 bytes; the kernel allows 107/);
    assert.equal(over.fix, `Use a --state-dir at most ${longestFitting} bytes long.`);
    const report = await runDoctor(options(node, { stateDir: `${node.root}/${"s".repeat(90)}` }));
    assert.equal(report.ok, false);

    const ok = check(await runDoctor(options(node, { stateDir: fits })), "socket path length");
    assert.deepEqual(
      [ok.ok, ok.detail],
      [true, "107 bytes for any volume ID (limit 107)"],
    );
  });
});

Deno.test("state dir: private and root-owned, too open, missing but creatable, or not creatable", async () => {
  await withFakeNode({}, async (node) => {
    const stateDir = `${node.root}/state`;
    const missing = check(await runDoctor(options(node)), "state dir");
    assert.equal(missing.ok, true);
    assert.match(missing.detail, /does not exist yet; it will be created/);

    await Deno.mkdir(stateDir, { mode: 0o700 });
    await Deno.chmod(stateDir, 0o700);
    const good = check(await runDoctor(options(node)), "state dir");
    assert.deepEqual([good.ok, good.detail], [true, `${stateDir} exists, mode 0700, owner root`]);

    await Deno.chmod(stateDir, 0o755);
    const open = check(await runDoctor(options(node)), "state dir");
    assert.deepEqual([open.ok, open.severity], [false, "warning"]);
    assert.match(open.detail, /mode 0755/);
    assert.equal(open.fix, `chmod 700 ${stateDir}`);

    const file = `${node.root}/a-file`;
    await Deno.writeTextFile(file, "");
    const notDir = check(await runDoctor(options(node, { stateDir: file })), "state dir");
    assert.deepEqual([notDir.ok, notDir.severity], [false, "error"]);

    const relative = check(await runDoctor(options(node, { stateDir: "var/lib/x" })), "state dir");
    assert.match(relative.detail, /not an absolute path/);
  });
});

Deno.test("a state dir on a read-only mount cannot be created", async () => {
  await withFakeNode({}, async (node) => {
    const mountInfo = ROOT_MOUNT +
      `40 22 0:50 / ${node.root} ro,relatime shared:2 - tmpfs tmpfs ro\n`;
    await Deno.writeTextFile(`${node.proc}/self/mountinfo`, mountInfo);
    const report = await runDoctor(options(node, { stateDir: `${node.root}/a/b/state` }));
    const state = check(report, "state dir");
    assert.deepEqual([state.ok, state.severity, report.ok], [false, "error", false]);
    assert.match(state.detail, new RegExp(`${node.root} is mounted read-only`));
  });
});

Deno.test("not running as root is an error", async () => {
  await withFakeNode({}, async (node) => {
    const report = await runDoctor(options(node, { uid: 1000 }));
    const root = check(report, "running as root");
    assert.deepEqual([root.ok, root.detail, report.ok], [false, "uid 1000", false]);
  });
});

Deno.test("unreadable roots are reported as failed checks, never thrown", async () => {
  await withFakeNode({}, async (node) => {
    const file = `${node.root}/not-a-dir`;
    await Deno.writeTextFile(file, "");
    const report = await runDoctor(options(node, { sysRoot: file, procRoot: file, devRoot: file }));
    assert.equal(report.ok, false);
    assert.match(check(report, "nbd kernel module").detail, /^could not check: /);
    assert.match(check(report, "filesystem ext4").detail, /^could not check: /);
  });
});

Deno.test("the formatted report is a table with fixes under failed rows and a summary", async () => {
  await withFakeNode({ fuse: false }, async (node) => {
    const report = await runDoctor(options(node));
    const text = formatDoctorReport(report);
    const lines = text.split("\n");
    assert.equal(lines[0], "zerofs-csi doctor (attach mode: auto → userspace)");
    assert.match(lines[2], /^STATUS {2}CHECK +DETAIL$/);
    const detailColumn = lines[2].indexOf("DETAIL");
    for (const c of report.checks) {
      const row = lines.find((l) => l.slice(8).startsWith(c.name + " "));
      assert.ok(row, `no row for ${c.name}`);
      assert.equal(row.slice(detailColumn), c.detail, `detail of ${c.name} not in its column`);
    }
    const fuseRow = lines.findIndex((l) => l.startsWith("FAIL    /dev/fuse"));
    assert.ok(fuseRow > 0, text);
    assert.match(lines[fuseRow + 1], /^ +fix: Load FUSE/);
    assert.equal(lines[fuseRow + 1].indexOf("fix:"), detailColumn);
    assert.equal(lines.at(-2), "NOT READY: 1 error(s), 1 warning(s), 1 note(s).");
    assert.ok(text.endsWith("\n"));
  });
});
