/**
 * One volume's CSI calls as kubelet and the sidecars make them, for the node
 * integration tests, the demo and the benchmark.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { status as grpcStatus } from "@grpc/grpc-js";
import { CsiCallError, type CsiClient } from "./csi_client.ts";

/** How a test volume is accessed. */
export type AccessKind = "ext4" | "xfs" | "btrfs" | "block";

/** The volume capability for an access kind. */
export function capabilityFor(kind: AccessKind, mode = "SINGLE_NODE_WRITER") {
  return kind === "block"
    ? { block: {}, access_mode: { mode } }
    : { mount: { fs_type: kind, mount_flags: [] }, access_mode: { mode } };
}

/** Paths kubelet would use for a volume. */
export function kubeletPaths(kubeletDir: string, volumeId: string) {
  return {
    staging: join(kubeletDir, "plugins/zerofs.csi.driver/staging", volumeId),
    target: join(kubeletDir, "pods/pod-1/volumes", volumeId),
  };
}

/** CreateVolume as the external-provisioner makes it; returns the Volume. */
export async function createVolume(
  client: CsiClient,
  opts: { name: string; kind: AccessKind; sizeBytes: number; parameters?: Record<string, string> },
) {
  const res = await client.controller.CreateVolume({
    name: opts.name,
    capacity_range: { required_bytes: opts.sizeBytes },
    volume_capabilities: [capabilityFor(opts.kind)],
    parameters: opts.parameters ?? {},
  });
  return res.volume as {
    volume_id: string;
    capacity_bytes: number;
    volume_context: Record<string, string>;
  };
}

/** NodeStageVolume for a created volume. */
export function stageRequest(
  volume: { volume_id: string; volume_context: Record<string, string> },
  opts: {
    kind: AccessKind;
    staging: string;
    mode?: string;
    publishContext?: Record<string, string>;
  },
) {
  return {
    volume_id: volume.volume_id,
    staging_target_path: opts.staging,
    volume_capability: capabilityFor(opts.kind, opts.mode),
    volume_context: volume.volume_context,
    publish_context: opts.publishContext ?? {},
  };
}

/** NodePublishVolume for a staged volume. */
export function publishRequest(
  volume: { volume_id: string; volume_context: Record<string, string> },
  opts: { kind: AccessKind; staging: string; target: string; readonly?: boolean; mode?: string },
) {
  return {
    volume_id: volume.volume_id,
    staging_target_path: opts.staging,
    target_path: opts.target,
    volume_capability: capabilityFor(opts.kind, opts.mode),
    readonly: opts.readonly ?? false,
    volume_context: volume.volume_context,
  };
}

/** The four requests of one volume's node life, for a given access kind. */
export function nodeRequests(
  volume: { volume_id: string; volume_context: Record<string, string> },
  opts: { kind: AccessKind; kubeletDir: string; readonly?: boolean; target?: string },
) {
  const paths = kubeletPaths(opts.kubeletDir, volume.volume_id);
  const target = opts.target ?? paths.target;
  const staging = paths.staging;
  return {
    staging,
    target,
    stage: stageRequest(volume, { kind: opts.kind, staging }),
    publish: publishRequest(volume, {
      kind: opts.kind,
      staging,
      target,
      readonly: opts.readonly,
    }),
    unpublish: { volume_id: volume.volume_id, target_path: target },
    unstage: { volume_id: volume.volume_id, staging_target_path: staging },
  };
}

/** Await a call that must fail with exactly `code` (and a message matching `re`). */
export async function expectCode(
  call: Promise<unknown>,
  code: grpcStatus,
  re?: RegExp,
): Promise<CsiCallError> {
  const err = await call.then(
    (res) => assert.fail(`expected ${grpcStatus[code]}, got success: ${JSON.stringify(res)}`),
    (e) => e,
  );
  assert.ok(err instanceof CsiCallError, String(err));
  assert.equal(grpcStatus[err.code], grpcStatus[code], err.message);
  if (re) assert.match(err.details, re);
  return err;
}

/** `n` random bytes (getRandomValues fills at most 64 KiB per call). */
export function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, i + 65536));
  return out;
}

/** Write `data` to `path` and fsync it. */
export async function writeFileSynced(path: string, data: Uint8Array): Promise<void> {
  using file = await Deno.open(path, { write: true, create: true, truncate: true });
  await writeAll(file, data);
  await file.sync();
}

/** Write `data` at `offsetBytes` of a block device node and sync it. */
export async function writeAtOffset(
  path: string,
  offsetBytes: number,
  data: Uint8Array,
): Promise<void> {
  using file = await Deno.open(path, { read: true, write: true });
  await file.seek(offsetBytes, Deno.SeekMode.Start);
  await writeAll(file, data);
  await file.sync();
}

/** Read `length` bytes at `offsetBytes` of a file or device node. */
export async function readAtOffset(
  path: string,
  offsetBytes: number,
  length: number,
): Promise<Uint8Array> {
  using file = await Deno.open(path, { read: true });
  await file.seek(offsetBytes, Deno.SeekMode.Start);
  const out = new Uint8Array(length);
  let got = 0;
  while (got < length) {
    const n = await file.read(out.subarray(got));
    if (n === null) break;
    got += n;
  }
  return out.subarray(0, got);
}

/** Assert a file (or a range of a device node) holds exactly `expected`. */
export async function assertContent(
  path: string,
  expected: Uint8Array,
  offsetBytes = 0,
): Promise<void> {
  const actual = await readAtOffset(path, offsetBytes, expected.length);
  assert.equal(actual.length, expected.length, `${path}: short read`);
  assert.ok(
    actual.every((b, i) => b === expected[i]),
    `${path} at ${offsetBytes}: content differs from what was written`,
  );
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  for (let done = 0; done < data.length;) done += await file.write(data.subarray(done));
}
