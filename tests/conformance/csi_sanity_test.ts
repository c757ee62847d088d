/**
 * The CSI conformance suite (csi-sanity v5.4.0, kubernetes-csi/csi-test)
 * against the real driver: controller and node agent started by
 * `startNodeEnvironment()` under their real permission sets, csi-sanity run
 * as a child process against their two unix sockets, once with mount access
 * (ext4) and once with block access. Every spec that runs must pass; the
 * skipped ones are printed with ginkgo's reason (they are specs for
 * capabilities the driver does not advertise: snapshots, ListVolumes, …).
 *
 * CI installs csi-sanity with `.ci/install`; a missing binary fails here.
 *
 * Run as root: `deno test -A tests/conformance/csi_sanity_test.ts`.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  findLeftovers,
  type NodeEnvironment,
  startNodeEnvironment,
  tearDownNodeEnvironment,
} from "../helpers/node_env.ts";
import {
  type GinkgoSummary,
  parseGinkgoSummary,
  type SkippedSpec,
  skippedSpecs,
} from "./ginkgo.ts";

const CSI_SANITY_VERSION = "v5.4.0";
const CSI_SANITY_BIN = Deno.env.get("CSI_SANITY_BIN") ?? "/opt/csi-sanity/csi-sanity";
const INSTALL_COMMAND = `GOBIN=/opt/csi-sanity go install ` +
  `github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@${CSI_SANITY_VERSION}`;

const MiB = 1024 * 1024;
/** Small volumes: every spec that stages one formats it on the object store. */
const VOLUME_BYTES = 64 * MiB;
const EXPANDED_BYTES = 128 * MiB;
/** Bound on one whole csi-sanity run (ginkgo's own default is one hour). */
const RUN_TIMEOUT = "30m";

function requireCsiSanity(): string {
  try {
    if (Deno.statSync(CSI_SANITY_BIN).isFile) return CSI_SANITY_BIN;
  } catch { /* reported below */ }
  throw new Error(
    `csi-sanity is not installed at ${CSI_SANITY_BIN}: run \`bash .ci/install\` or ` +
      `\`${INSTALL_COMMAND}\` (or set CSI_SANITY_BIN)`,
  );
}

/** What one csi-sanity run reported. */
interface SanityRun {
  summary: GinkgoSummary | null;
  skipped: SkippedSpec[];
  output: string;
  exitCode: number;
}

async function runCsiSanity(
  env: NodeEnvironment,
  access: "mount" | "block",
): Promise<SanityRun> {
  const work = join(env.dir, `sanity-${access}`);
  await Deno.mkdir(work, { recursive: true });
  const junit = join(work, "junit.xml");
  const args = [
    `--csi.endpoint=${env.node.socketPath}`,
    `--csi.controllerendpoint=${env.controller.socketPath}`,
    // csi-sanity creates (and removes) these two itself; they must not exist yet.
    `--csi.stagingdir=${join(env.kubeletDir, `sanity-${access}-staging`)}`,
    `--csi.mountdir=${join(env.kubeletDir, `sanity-${access}-target`)}`,
    `--csi.testvolumesize=${VOLUME_BYTES}`,
    `--csi.testvolumeexpandsize=${EXPANDED_BYTES}`,
    `--csi.testvolumeaccesstype=${access}`,
    `--ginkgo.junit-report=${junit}`,
    `--ginkgo.timeout=${RUN_TIMEOUT}`,
    "--ginkgo.no-color",
  ];
  if (access === "mount") {
    const parameters = join(work, "parameters.yaml");
    await Deno.writeTextFile(parameters, "filesystem: ext4\n");
    args.push(`--csi.testvolumeparameters=${parameters}`);
  }
  const child = await new Deno.Command(CSI_SANITY_BIN, {
    args,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const output = new TextDecoder().decode(child.stdout) + new TextDecoder().decode(child.stderr);
  const report = await Deno.readTextFile(junit).catch(() => "");
  return {
    summary: parseGinkgoSummary(output),
    skipped: skippedSpecs(report),
    output,
    exitCode: child.code,
  };
}

function report(access: string, run: SanityRun): void {
  const s = run.summary;
  console.log(
    `csi-sanity ${CSI_SANITY_VERSION} (${access}): ` +
      (s
        ? `${s.passed} passed, ${s.failed} failed, ${s.skipped} skipped of ${s.total} specs`
        : "no summary"),
  );
  for (const line of run.output.split("\n")) {
    if (/Ran \d+ of \d+ Specs|\d+ Passed \|/.test(line)) console.log(`  ${line.trim()}`);
  }
  for (const spec of run.skipped) console.log(`  skipped: ${spec.name} — ${spec.reason}`);
}

function assertAllPassed(access: string, run: SanityRun): void {
  const tail = run.output.split("\n").slice(-300).join("\n");
  assert.ok(
    run.summary,
    `csi-sanity (${access}) printed no summary (exit ${run.exitCode}):\n${tail}`,
  );
  assert.equal(
    run.summary.failed,
    0,
    `csi-sanity (${access}): ${run.summary.failed} specs failed:\n${tail}`,
  );
  assert.ok(run.summary.passed > 0, `csi-sanity (${access}) ran no spec:\n${tail}`);
  assert.equal(run.exitCode, 0, `csi-sanity (${access}) exited ${run.exitCode}:\n${tail}`);
}

/**
 * Nothing of a volume left on the host: no loop device, mount, socket, volume
 * state directory or process — except the environment's own S3 server, whose
 * command line names the environment directory too.
 */
async function assertNodeClean(env: NodeEnvironment): Promise<void> {
  const left = await findLeftovers(env);
  const s3Dir = join(env.dir, "s3");
  const processes = left.processes.filter((p) => !p.includes(s3Dir));
  assert.deepEqual({ ...left, processes }, {
    loopDevices: [],
    mounts: [],
    processes: [],
    sockets: [],
    volumeDirs: [],
  });
}

Deno.test(`csi-sanity ${CSI_SANITY_VERSION}: mount (ext4) and block access`, async (t) => {
  requireCsiSanity();
  const env = await startNodeEnvironment();
  try {
    for (const access of ["mount", "block"] as const) {
      await t.step(`${access} access: every spec that runs passes`, async () => {
        const run = await runCsiSanity(env, access);
        report(access, run);
        assertAllPassed(access, run);
        // csi-sanity unstages and deletes what it made: the node must be left clean.
        await assertNodeClean(env);
      });
    }
  } finally {
    await tearDownNodeEnvironment(env);
  }
});
