/**
 * A ConfigMap edit never re-points a volume, on the real ZeroFS and MinIO:
 * a volume created while its ConfigMap said storage URL A keeps living at A
 * after the ConfigMap says B — the next stage finds its data (no fresh
 * format at B, a warning naming the key instead) and DeleteVolume deletes
 * under A only.
 *
 * Both services read the settings file at start, so the edit is followed by
 * a restart of each, as a ConfigMap edit is seen by running ones.
 *
 * Run as root: `deno test -A tests/integration/volume_pin_test.ts`.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { listBucketKeys } from "../helpers/bucket.ts";
import { rawClient } from "../helpers/controller_s3.ts";
import { assertNothingLeft, volumeProcesses, withNodeEnvironment } from "../helpers/node_env.ts";
import {
  assertContent,
  createVolume,
  nodeRequests,
  randomBytes,
  writeFileSynced,
} from "../helpers/volume_steps.ts";

const GiB = 1024 ** 3;
const BUCKET = "zerofs-test";
const SITE_A = `s3://${BUCKET}/site-a`;
const SITE_B = `s3://${BUCKET}/site-b`;

function formatCount(output: string, volumeId: string): number {
  return output.split("\n").filter((l) =>
    l.includes("formatting new volume") && l.includes(volumeId)
  ).length;
}

Deno.test("a ConfigMap edit does not move a volume: stage and DeleteVolume stay at the pin", async () => {
  await withNodeEnvironment(async (env) => {
    const name = "pvc-pinned";
    const keysAt = (prefix: string) => listBucketKeys(env.s3, BUCKET, prefix);
    const volume = await createVolume(env.controller.client, {
      name,
      kind: "ext4",
      sizeBytes: GiB,
      parameters: { configMapName: "site" },
    });
    assert.equal(volume.volume_context["zerofs.csi/storageURL"], SITE_A);
    assert.equal(volume.volume_context["zerofs.csi/awsEndpoint"], env.s3.endpoint);
    const req = nodeRequests(volume, { kind: "ext4", kubeletDir: env.kubeletDir });
    const data = randomBytes(300_000);
    const dataPath = join(req.staging, "keep.bin");

    await env.node.client.node.NodeStageVolume(req.stage);
    await writeFileSynced(dataPath, data);
    let processes = await volumeProcesses(env, name);
    await env.node.client.node.NodeUnstageVolume(req.unstage);
    await assertNothingLeft(env, processes);
    const formatsBefore = formatCount(env.node.output(), name);
    assert.equal(formatsBefore, 1);
    assert.ok((await keysAt(`site-a/${name}/`)).length > 0, "ZeroFS wrote under A");
    assert.deepEqual(await keysAt("site-b/"), []);

    // The ConfigMap now points at B; both services see it after a restart.
    const settings = await Deno.readTextFile(env.settingsFile);
    assert.ok(settings.includes(SITE_A));
    await Deno.writeTextFile(env.settingsFile, settings.replaceAll(SITE_A, SITE_B));
    await env.node.stop();
    await env.restartNode();
    await env.controller.stop();
    await env.restartController();

    await env.node.client.node.NodeStageVolume(req.stage);
    await assertContent(dataPath, data);
    assert.equal(formatsBefore + formatCount(env.node.output(), name), 1, "formatted once only");
    assert.match(
      env.node.output(),
      new RegExp(
        `"msg":"the settings disagree with the volume's pin","volume_id":"${name}",` +
          `"setting":"storageURL","detail":"setting \\\\"storageURL\\\\" now resolves to ` +
          `\\\\"${SITE_B}\\\\" but the volume is pinned to \\\\"${SITE_A}\\\\"`,
      ),
    );
    processes = await volumeProcesses(env, name);
    await env.node.client.node.NodeUnstageVolume(req.unstage);
    await assertNothingLeft(env, processes);
    assert.deepEqual(await keysAt("site-b/"), [], "nothing was ever written at B");

    // Something of someone else's at B, where the ConfigMap now points: it must stay.
    const sentinel = `site-b/${name}/wal/000000.sst`;
    const client = rawClient(env.s3);
    try {
      await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: sentinel, Body: "keep" }));
    } finally {
      client.destroy();
    }
    assert.deepEqual(await env.controller.client.controller.DeleteVolume({ volume_id: name }), {});
    assert.deepEqual(await keysAt(`site-a/${name}/`), [], "deleted at the pinned prefix");
    assert.deepEqual(await keysAt("site-b/"), [sentinel], "nothing deleted at B");
    assert.match(
      env.controller.output(),
      new RegExp(
        `"msg":"the settings disagree with the volume's pin","volume_id":"${name}",` +
          `"setting":"storageURL"`,
      ),
    );
    assert.match(env.controller.output(), /"msg":"volume objects deleted"/);
  }, { extraSettings: ["[configMaps.site]", `storageURL = "${SITE_A}"`] });
});
