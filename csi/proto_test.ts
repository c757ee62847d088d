/**
 * Pins wire field numbers and enum values of csi/csi.proto against the
 * published CSI spec (v1.10.0): a tag byte is (field << 3) | wire type.
 */
import assert from "node:assert/strict";
import type * as grpc from "@grpc/grpc-js";
import { type CsiServices, csiServices } from "./proto.ts";

function firstTag(bytes: Uint8Array): number {
  return bytes[0] >> 3;
}

Deno.test("csi.proto: field numbers match the spec", () => {
  const s = csiServices();
  const cv = s.Controller.CreateVolume;
  const tag = (o: Record<string, unknown>) => firstTag(cv.requestSerialize(o));
  assert.equal(tag({ name: "a" }), 1);
  assert.equal(tag({ capacity_range: { required_bytes: 1 } }), 2);
  assert.equal(tag({ volume_capabilities: [{ block: {} }] }), 3);
  assert.equal(tag({ parameters: { a: "b" } }), 4);
  assert.equal(tag({ secrets: { a: "b" } }), 5);
  assert.equal(tag({ mutable_parameters: { a: "b" } }), 8);
  const stage = s.Node.NodeStageVolume.requestSerialize;
  assert.equal(firstTag(stage({ staging_target_path: "/x" })), 3);
  assert.equal(firstTag(stage({ volume_context: { a: "b" } })), 6);
  const pub = s.Node.NodePublishVolume.requestSerialize;
  assert.equal(firstTag(pub({ target_path: "/x" })), 4);
  assert.equal(firstTag(pub({ readonly: true })), 6);
  assert.equal(firstTag(pub({ volume_context: { a: "b" } })), 8);
  const info = s.Node.NodeGetInfo.responseSerialize;
  assert.deepEqual([...info({ max_volumes_per_node: 7 })], [2 << 3, 7]);
  const exp = s.Controller.ControllerExpandVolume.responseSerialize;
  assert.deepEqual([...exp({ node_expansion_required: true })], [2 << 3, 1]);
});

Deno.test("csi.proto: enum values match the spec", () => {
  // Untyped on purpose: the names come from the spec, not from the generated types.
  const s: Record<keyof CsiServices, grpc.ServiceDefinition> = csiServices();
  const mode = (m: string) =>
    [...s.Controller.CreateVolume.requestSerialize({
      volume_capabilities: [{ access_mode: { mode: m } }],
    })].at(-1);
  assert.deepEqual(
    [
      "SINGLE_NODE_WRITER",
      "SINGLE_NODE_READER_ONLY",
      "MULTI_NODE_READER_ONLY",
      "MULTI_NODE_SINGLE_WRITER",
      "MULTI_NODE_MULTI_WRITER",
      "SINGLE_NODE_SINGLE_WRITER",
      "SINGLE_NODE_MULTI_WRITER",
    ].map(mode),
    [1, 2, 3, 4, 5, 6, 7],
  );
  const ccap = (t: string) =>
    [...s.Controller.ControllerGetCapabilities.responseSerialize({
      capabilities: [{ rpc: { type: t } }],
    })].at(-1);
  assert.equal(ccap("EXPAND_VOLUME"), 9);
  assert.equal(ccap("PUBLISH_READONLY"), 8);
  assert.equal(ccap("SINGLE_NODE_MULTI_WRITER"), 13);
  const ncap = (t: string) =>
    [...s.Node.NodeGetCapabilities.responseSerialize({ capabilities: [{ rpc: { type: t } }] })].at(
      -1,
    );
  assert.equal(ncap("STAGE_UNSTAGE_VOLUME"), 1);
  assert.equal(ncap("VOLUME_MOUNT_GROUP"), 6);
  const pcap = (o: Record<string, unknown>) =>
    [...s.Identity.GetPluginCapabilities.responseSerialize({ capabilities: [o] })].at(-1);
  assert.equal(pcap({ service: { type: "SNAPSHOT_METADATA_SERVICE" } }), 4);
  assert.equal(pcap({ volume_expansion: { type: "OFFLINE" } }), 2);
});
