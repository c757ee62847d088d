/**
 * The orphan scan's pure core, case by case: what a record owns is never an
 * orphan; what lies under the state root (or is connected) unowned is. The
 * expected lists are written out by hand.
 *
 * Run: `deno test -A csi/node/orphans_test.ts`.
 */

import assert from "node:assert/strict";
import type { MountEntry } from "../../blockdev/mod.ts";
import { volumeDirName } from "../../zerofs/mod.ts";
import { DriverMetrics } from "../metrics.ts";
import { countOrphans, findOrphans, type OrphanScanInput } from "./orphans.ts";

const ROOT = "/run/zerofs-csi";
const OWNED = "pvc-owned";
const OWNED_DIR = `${ROOT}/v/${volumeDirName(OWNED)}`;
const LOST_DIR = `${ROOT}/v/0123456789abcdef`;
const STAGING = "/var/lib/kubelet/plugins/kubernetes.io/csi/zerofs.csi/abc/globalmount";
const TARGET = "/var/lib/kubelet/pods/p1/volumes/kubernetes.io~csi/pvc-owned/mount";

function mount(mountPoint: string, source: string, fsType = "ext4"): MountEntry {
  return {
    mountId: 1,
    parentId: 0,
    devNumbers: "0:0",
    root: "/",
    mountPoint,
    options: ["rw"],
    fsType,
    source,
    superOptions: ["rw"],
  };
}

const RECORD: OrphanScanInput["records"][number] = {
  volumeId: OWNED,
  stagingPath: STAGING,
  attachment: { mode: "userspace", device: "/dev/loop3", fuseDir: `${OWNED_DIR}/nbdfuse` },
  publishedTargets: [{ path: TARGET, readOnly: false }],
};

const EMPTY: OrphanScanInput = {
  stateRoot: ROOT,
  records: [RECORD],
  mounts: [],
  nbdDevices: [],
  loopDevices: [],
  processes: [],
};

const CASES: { name: string; input: Partial<OrphanScanInput>; want: [string, string][] }[] = [
  { name: "nothing on the host", input: {}, want: [] },
  {
    name: "everything the record names is owned",
    input: {
      loopDevices: [{ device: "/dev/loop3", backingFile: `${OWNED_DIR}/nbdfuse/nbd` }],
      mounts: [
        mount(`${OWNED_DIR}/nbdfuse`, "nbdfuse", "fuse.nbdfuse"),
        mount(STAGING, "/dev/loop3"),
        mount(TARGET, "/dev/loop3"),
      ],
      processes: [{ pid: 10, argv: ["zerofs", "run", "-c", `${OWNED_DIR}/config.toml`] }],
    },
    want: [],
  },
  {
    name: "a connected nbd device no record names",
    input: { nbdDevices: [{ device: "/dev/nbd5", pid: 77 }] },
    want: [["nbd", "/dev/nbd5"]],
  },
  {
    name: "a loop device on a file under the state root, and its mount",
    input: {
      loopDevices: [{ device: "/dev/loop9", backingFile: `${LOST_DIR}/nbdfuse/nbd` }],
      mounts: [mount("/var/lib/kubelet/plugins/x/globalmount", "/dev/loop9")],
    },
    want: [["loop", "/dev/loop9"], ["mount", "/var/lib/kubelet/plugins/x/globalmount"]],
  },
  {
    name: "loop devices of other software are not ours",
    input: {
      loopDevices: [{ device: "/dev/loop1", backingFile: "/var/lib/snapd/snaps/core.snap" }],
      mounts: [mount("/snap/core/1", "/dev/loop1", "squashfs")],
    },
    want: [],
  },
  {
    name: "a loop device on the owned volume's file but not the recorded device",
    input: { loopDevices: [{ device: "/dev/loop4", backingFile: `${OWNED_DIR}/nbdfuse/nbd` }] },
    want: [["loop", "/dev/loop4"]],
  },
  {
    name: "a FUSE mount and a plain mount in an unrecorded volume dir",
    input: {
      mounts: [
        mount(`${LOST_DIR}/nbdfuse`, "nbdfuse", "fuse.nbdfuse"),
        mount(`${ROOT}/stray`, "tmpfs", "tmpfs"),
      ],
    },
    want: [["fuse", `${LOST_DIR}/nbdfuse`], ["mount", `${ROOT}/stray`]],
  },
  {
    name: "the state root itself and lookalike prefixes are not under it",
    input: { mounts: [mount(ROOT, "tmpfs", "tmpfs"), mount(`${ROOT}-other/x`, "tmpfs", "tmpfs")] },
    want: [],
  },
  {
    name: "ZeroFS of an unrecorded volume, in each config spelling; others ignored",
    input: {
      processes: [
        { pid: 21, argv: ["zerofs", "run", "-c", `${LOST_DIR}/config.toml`] },
        { pid: 22, argv: ["zerofs", "run", `--config=${LOST_DIR}/config.toml`] },
        { pid: 23, argv: ["zerofs", "run", "-c", "/etc/zerofs/config.toml"] },
        { pid: 24, argv: ["cat", `${LOST_DIR}/config.toml`] },
      ],
    },
    want: [["zerofs", "pid 21"], ["zerofs", "pid 22"]],
  },
  {
    name: "with no records, the owned volume's things are all orphans",
    input: {
      records: [],
      loopDevices: [{ device: "/dev/loop3", backingFile: `${OWNED_DIR}/nbdfuse/nbd` }],
      mounts: [
        mount(`${OWNED_DIR}/nbdfuse`, "nbdfuse", "fuse.nbdfuse"),
        mount(STAGING, "/dev/loop3"),
      ],
      processes: [{ pid: 10, argv: ["zerofs", "run", "-c", `${OWNED_DIR}/config.toml`] }],
    },
    want: [
      ["loop", "/dev/loop3"],
      ["fuse", `${OWNED_DIR}/nbdfuse`],
      ["mount", STAGING],
      ["zerofs", "pid 10"],
    ],
  },
];

for (const c of CASES) {
  Deno.test(`orphans: ${c.name}`, () => {
    const found = findOrphans({ ...EMPTY, ...c.input });
    assert.deepEqual(found.map((o) => [o.kind, o.what]), c.want);
    for (const o of found) assert.match(o.detail, /`(umount|losetup -d|nbd-client -d|kill) /);
  });
}

Deno.test("orphans: the gauge shows each kind, zero included", async () => {
  const metrics = new DriverMetrics();
  metrics.setNodeGauges({
    volumesStaged: 0,
    nbdDevicesInUse: 0,
    nbdDevicesAvailable: 0,
    zerofsInstancesReady: 0,
    zerofsInstancesNotReady: 0,
    volumesAbnormal: 0,
  });
  metrics.setOrphans(countOrphans(findOrphans({
    ...EMPTY,
    records: [],
    nbdDevices: [{ device: "/dev/nbd1", pid: 5 }, { device: "/dev/nbd2", pid: 6 }],
  })));
  const text = await metrics.render();
  assert.match(text, /^zerofs_csi_orphans\{kind="nbd"\} 2$/m);
  assert.match(text, /^zerofs_csi_orphans\{kind="loop"\} 0$/m);
  assert.match(text, /^zerofs_csi_orphans\{kind="zerofs"\} 0$/m);
  assert.throws(() => metrics.setOrphans({ nbd: -1 }), RangeError);
});
