import assert from "node:assert/strict";
import { findMountByTarget, findMountsBySource, parseMountInfo } from "./mountinfo.ts";

const SAMPLE = [
  "22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw",
  "36 35 98:0 /mnt1 /mnt/my\\040disk rw,noatime master:1 propagate_from:2 - ext3 /dev/root rw,errors=continue",
  "40 22 7:3 / /var/lib/kubelet/pods/a\\011b\\012c\\134d rw - xfs /dev/loop3 rw,attr2",
  "41 22 0:50 / /srv/nos rw - tmpfs tmpfs rw",
  "42 22 0:51 / /srv/stacked rw - tmpfs first rw",
  "43 42 0:52 / /srv/stacked ro - tmpfs second rw",
  "",
].join("\n");

Deno.test("parseMountInfo reads every field, with and without optional fields", () => {
  const entries = parseMountInfo(SAMPLE);
  assert.deepEqual(entries.length, 6);
  assert.deepEqual(entries[1], {
    mountId: 36,
    parentId: 35,
    devNumbers: "98:0",
    root: "/mnt1",
    mountPoint: "/mnt/my disk",
    options: ["rw", "noatime"],
    fsType: "ext3",
    source: "/dev/root",
    superOptions: ["rw", "errors=continue"],
  });
  assert.deepEqual(entries[3].options, ["rw"]);
  assert.deepEqual(entries[3].source, "tmpfs");
});

Deno.test("parseMountInfo decodes tab, newline and backslash escapes", () => {
  assert.deepEqual(parseMountInfo(SAMPLE)[2].mountPoint, "/var/lib/kubelet/pods/a\tb\nc\\d");
});

Deno.test("parseMountInfo throws on a truncated line instead of dropping it", () => {
  assert.throws(() => parseMountInfo("22 1 253:1 / / rw\n"), /Cannot parse mountinfo line/);
});

Deno.test("findMountByTarget returns the topmost of stacked mounts, undefined when absent", async () => {
  const path = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(path, SAMPLE);
    assert.deepEqual(
      (await findMountByTarget("/srv/stacked/", { mountInfoPath: path }))?.source,
      "second",
    );
    assert.deepEqual(await findMountByTarget("/srv/none", { mountInfoPath: path }), undefined);
    assert.deepEqual(
      (await findMountByTarget("/mnt/my disk", { mountInfoPath: path }))?.mountId,
      36,
    );
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("findMountsBySource matches the device name", async () => {
  const path = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(path, SAMPLE);
    const found = await findMountsBySource("/dev/loop3", { mountInfoPath: path });
    assert.deepEqual(found.map((m) => m.mountId), [40]);
    assert.deepEqual(await findMountsBySource("/dev/loop9", { mountInfoPath: path }), []);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("readMountInfo parses this host's real mount table", async () => {
  const root = await findMountByTarget("/");
  assert.deepEqual(root?.mountPoint, "/");
});
