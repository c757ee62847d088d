/**
 * `deno task demo`: one volume's whole life through the real CSI API.
 *
 * Starts `zerofs-csi controller` and `zerofs-csi node` (process runner,
 * attach mode auto) on embedded defaults in a private directory, then drives
 * create → controller-publish → stage → publish → write → unpublish → unstage
 * → stage again → the file is still there → expand → unstage → delete, printing
 * each step with its time. It runs the real ZeroFS (the release `.ci/install`
 * builds) against a real S3 server (MinIO) on loopback, says which releases,
 * and shows the volume's objects in the bucket before and after DeleteVolume.
 *
 * @module
 */

import { join } from "node:path";
import { MINIO_VERSION } from "./fixtures/s3.ts";
import { realZeroFsBin } from "./fixtures/zerofs.ts";
import { listBucketKeys } from "./helpers/bucket.ts";
import {
  type NodeEnvironment,
  startNodeEnvironment,
  tearDownNodeEnvironment,
} from "./helpers/node_env.ts";
import {
  capabilityFor,
  createVolume,
  kubeletPaths,
  publishRequest,
  stageRequest,
} from "./helpers/volume_steps.ts";

const GIB = 1 << 30;
const VOLUME_ID = `pvc-demo-${crypto.randomUUID().slice(0, 8)}`;
const NOTE = `Hello from ${VOLUME_ID}, written at ${new Date().toISOString()}\n`;

/** Host tools the node needs, with the Debian package that provides each. */
const TOOLS: Record<string, string> = {
  nbdfuse: "libnbd-bin",
  losetup: "util-linux",
  blkid: "util-linux",
  "mkfs.ext4": "e2fsprogs",
  resize2fs: "e2fsprogs",
  fusermount3: "fuse3",
};

async function which(tool: string): Promise<string | null> {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":").concat(["/usr/sbin", "/sbin"])) {
    try {
      const path = join(dir, tool);
      const info = await Deno.stat(path);
      if (info.isFile && (info.mode ?? 0) & 0o111) return path;
    } catch { /* not here */ }
  }
  return null;
}

async function countObjects(env: NodeEnvironment, volumeId: string): Promise<number> {
  return (await listBucketKeys(env.s3, "zerofs-test", `volumes/${volumeId}/`)).length;
}

async function versionLine(bin: string): Promise<string> {
  const out = await new Deno.Command(bin, { args: ["--version"], stdout: "piped" }).output();
  return new TextDecoder().decode(out.stdout).trim();
}

async function checkPrerequisites(): Promise<void> {
  if (Deno.uid() !== 0) {
    fail("the demo attaches block devices and mounts filesystems: run it as root");
  }
  const missing = [];
  for (const [tool, pkg] of Object.entries(TOOLS)) {
    if (!(await which(tool))) missing.push(`${tool} (Debian package ${pkg})`);
  }
  if (missing.length > 0) {
    fail(
      `missing host tools: ${missing.join(", ")}.\n` +
        `Install them with: apt-get install -y ${
          [...new Set(missing.map((m) => m.match(/package (\S+)\)/)![1]))].join(" ")
        }`,
    );
  }
}

function fail(message: string): never {
  console.error(`demo: ${message}`);
  Deno.exit(1);
}

let stepNumber = 0;
/** Set by Ctrl-C or SIGTERM: no further step starts; clean-up runs. */
let interrupted = false;

async function step<T>(title: string, fn: () => Promise<T>): Promise<T> {
  if (interrupted) throw new Error(`interrupted before "${title}"`);
  stepNumber++;
  const t0 = performance.now();
  const result = await fn();
  const ms = (performance.now() - t0).toFixed(1).padStart(8);
  console.log(`${String(stepNumber).padStart(2)}. ${title.padEnd(58)} ${ms} ms`);
  return result;
}

async function runLifecycle(env: NodeEnvironment): Promise<void> {
  const controller = env.controller.client.controller;
  const node = () => env.node.client.node;
  const paths = kubeletPaths(env.kubeletDir, VOLUME_ID);
  const volume = await step(
    "CreateVolume (1 GiB, ext4)",
    () => createVolume(env.controller.client, { name: VOLUME_ID, kind: "ext4", sizeBytes: GIB }),
  );
  await step("ControllerPublishVolume to node test-node", () =>
    controller.ControllerPublishVolume({
      volume_id: VOLUME_ID,
      node_id: "test-node",
      volume_capability: capabilityFor("ext4"),
      readonly: false,
      volume_context: volume.volume_context,
    }));
  const stage = stageRequest(volume, { kind: "ext4", staging: paths.staging });
  await step(
    "NodeStageVolume (start ZeroFS, attach, format, mount)",
    () => node().NodeStageVolume(stage),
  );
  const publish = publishRequest(volume, {
    kind: "ext4",
    staging: paths.staging,
    target: paths.target,
  });
  await step(
    "NodePublishVolume (bind mount into the pod)",
    () => node().NodePublishVolume(publish),
  );
  await step("write a file in the pod's volume", async () => {
    await Deno.writeTextFile(join(paths.target, "hello.txt"), NOTE);
  });
  await step(
    "NodeUnpublishVolume",
    () => node().NodeUnpublishVolume({ volume_id: VOLUME_ID, target_path: paths.target }),
  );
  await step(
    "NodeUnstageVolume (unmount, detach, stop ZeroFS)",
    () => node().NodeUnstageVolume({ volume_id: VOLUME_ID, staging_target_path: paths.staging }),
  );
  const objects = await step(
    `ZeroFS's objects in S3 under volumes/${VOLUME_ID}/`,
    () => countObjects(env, VOLUME_ID),
  );
  // Offline expansion: ControllerExpandVolume is refused while a node has the volume published.
  await step(
    "ControllerUnpublishVolume",
    () => controller.ControllerUnpublishVolume({ volume_id: VOLUME_ID, node_id: "test-node" }),
  );
  const expanded = await step(
    "ControllerExpandVolume to 2 GiB",
    () =>
      controller.ControllerExpandVolume({
        volume_id: VOLUME_ID,
        capacity_range: { required_bytes: 2 * GIB },
        volume_capability: capabilityFor("ext4"),
      }),
  );
  await step("NodeStageVolume again (no reformat)", () => node().NodeStageVolume(stage));
  await step("the file is still there", async () => {
    const text = await Deno.readTextFile(join(paths.staging, "hello.txt"));
    if (text !== NOTE) throw new Error(`file content changed: ${JSON.stringify(text)}`);
  });
  const grown = await step(
    "NodeExpandVolume (offline: regrow device, grow ext4)",
    () =>
      node().NodeExpandVolume({
        volume_id: VOLUME_ID,
        volume_path: paths.staging,
        staging_target_path: paths.staging,
        capacity_range: { required_bytes: expanded.capacity_bytes },
        volume_capability: capabilityFor("ext4"),
      }),
  );
  const stats = await step(
    "NodeGetVolumeStats",
    () => node().NodeGetVolumeStats({ volume_id: VOLUME_ID, volume_path: paths.staging }),
  );
  await step(
    "NodeUnstageVolume",
    () => node().NodeUnstageVolume({ volume_id: VOLUME_ID, staging_target_path: paths.staging }),
  );
  await step("DeleteVolume", () => controller.DeleteVolume({ volume_id: VOLUME_ID }));
  const left = await step(
    "objects left under the volume's prefix",
    () => countObjects(env, VOLUME_ID),
  );
  if (left !== 0) throw new Error(`DeleteVolume left ${left} objects`);
  const bytes = stats.usage.find((u: { unit: string }) => u.unit === "BYTES");
  console.log(
    `\nZeroFS wrote ${objects} objects for the volume; DeleteVolume removed them all.` +
      `\nDevice grew to ${grown.capacity_bytes / GIB} GiB; the filesystem reports ` +
      `${(bytes.total / GIB).toFixed(2)} GiB total; condition: ${stats.volume_condition.message}.`,
  );
}

async function main(): Promise<void> {
  await checkPrerequisites();
  let zerofsBin: string;
  try {
    zerofsBin = realZeroFsBin();
  } catch (e) {
    fail((e as Error).message);
  }
  const t0 = performance.now();
  const env = await startNodeEnvironment({ zerofsBin });
  console.log(`ZeroFS: ${await versionLine(zerofsBin)} (${zerofsBin})`);
  console.log(`S3:     MinIO ${MINIO_VERSION}, ${env.s3.description} at ${env.s3.endpoint}`);
  console.log(
    `Controller and node agent are serving (${(performance.now() - t0).toFixed(0)} ms) in ` +
      `${env.dir}\n`,
  );
  const stopOnSignal = onInterrupt();
  try {
    await runLifecycle(env);
    console.log(`\nDemo finished: volume ${VOLUME_ID} lived its whole life through the CSI API.`);
  } catch (e) {
    if (!interrupted) {
      console.error(`\nDemo step failed: ${(e as Error).message}`);
      console.error(
        "Node agent's last log lines:\n" + env.node.output().split("\n").slice(-15).join("\n"),
      );
      throw e;
    }
  } finally {
    await tearDownNodeEnvironment(env);
    stopOnSignal();
  }
  if (interrupted) {
    console.error("Demo interrupted; everything it staged was unstaged and the driver stopped.");
    Deno.exit(130);
  }
}

/**
 * Ctrl-C or SIGTERM mid-demo: the running step finishes, no further step
 * starts, and the clean-up in `main` unstages and stops everything (a volume
 * left staged would outlive the demo as mounts whose helpers are gone). A
 * second signal exits at once. Returns the function that removes the handlers.
 */
function onInterrupt(): () => void {
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  const handler = () => {
    if (interrupted) Deno.exit(130);
    interrupted = true;
    console.error("\nInterrupted: finishing the current step, then cleaning up (again to force)…");
  };
  for (const s of signals) Deno.addSignalListener(s, handler);
  return () => {
    for (const s of signals) Deno.removeSignalListener(s, handler);
  };
}

if (import.meta.main) await main();
