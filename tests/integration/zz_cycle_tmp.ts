import { startNodeEnvironment } from "../helpers/node_env.ts";
import { createVolume, nodeRequests } from "../helpers/volume_steps.ts";
const env = await startNodeEnvironment();
try {
  const volume = await createVolume(env.controller.client, {
    name: "pvc-c",
    kind: "ext4",
    sizeBytes: 1 << 30,
  });
  const req = nodeRequests(volume, { kind: "ext4", kubeletDir: env.kubeletDir });
  let last = "";
  let stop = false;
  const dirName =
    (await import("../../zerofs/mod.ts")).volumePaths(env.stateDir, "pvc-c").zerofsLog;
  (async () => {
    while (!stop) {
      last = await Deno.readTextFile(dirName).catch(() => last);
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  for (let i = 1; i <= 100; i++) {
    try {
      await env.node.client.node.NodeStageVolume(req.stage);
    } catch (e) {
      console.log("cycle", i, String(e));
      const d = `${env.stateDir}/v`;
      for await (const e of Deno.readDir(d)) {
        console.log(await Deno.readTextFile(`${d}/${e.name}/zerofs.log`).catch((x) => String(x)));
      }
      console.log("LAST LOG:\n" + last);
      stop = true;
      break;
    }
    await env.node.client.node.NodeUnstageVolume(req.unstage);
  }
  stop = true;
} finally {
  await env.node.client.node.NodeUnstageVolume({
    volume_id: "pvc-c",
    staging_target_path: `${env.kubeletDir}/plugins/zerofs.csi.driver/staging/pvc-c`,
  }).catch(() => {});
  await env.stop();
}
