/**
 * Proves the VM harness gives tests what the kernel attach path needs: the nbd
 * module, a real NBD device over a unix socket on the guest's tmpfs, the three
 * filesystems the driver formats, Deno with the host's npm cache — and that a
 * hung guest is killed at the bound with its console tail in the error.
 *
 * @module
 */

import assert from "node:assert/strict";
import { REPO_DIR, runInVm, VmError } from "./mod.ts";

/** Lines the guest script prints as `KEY value…`; the last value of each key wins. */
function parseReport(output: string): Map<string, string> {
  const report = new Map<string, string>();
  for (const line of output.split("\n")) {
    const match = /^([A-Z][A-Za-z_0-9]*) (.*)$/.exec(line.trim());
    if (match) report.set(match[1], match[2]);
  }
  return report;
}

const SMOKE_SCRIPT = String.raw`
set -euo pipefail
ms() { echo $(( $(date +%s%N) / 1000000 )); }
t0=$(ms)

modprobe nbd nbds_max=4
for i in 0 1 2 3 4; do
  if [ -b /dev/nbd$i ]; then echo "DEV_nbd$i present"; else echo "DEV_nbd$i absent"; fi
done

nbdkit --unix /run/nbd.sock --pidfile /run/nbdkit.pid memory 1G
nbd-client -unix /run/nbd.sock -N disk -b 4096 /dev/nbd0
echo "SIZE_CONNECTED_SECTORS $(cat /sys/block/nbd0/size)"
echo "BLOCK_SIZE_BYTES $(cat /sys/block/nbd0/queue/logical_block_size)"

echo "ATTACH_MS $(( $(ms) - t0 ))"
mkdir -p /run/mnt
for fs in ext4 xfs btrfs; do
  t_fs=$(ms)
  case $fs in
    ext4) mkfs.ext4 -q -F -E nodiscard,lazy_itable_init=1,lazy_journal_init=1 /dev/nbd0 ;;
    xfs) mkfs.xfs -q -f -K /dev/nbd0 ;;
    btrfs) mkfs.btrfs -q -f -K /dev/nbd0 >/dev/null ;;
  esac
  mount /dev/nbd0 /run/mnt
  echo "written-on-$fs" > /run/mnt/probe
  umount /run/mnt
  mount /dev/nbd0 /run/mnt
  echo "FS_$fs $(blkid -p -o value -s TYPE /dev/nbd0) $(cat /run/mnt/probe)"
  umount /run/mnt
  echo "MKFS_MOUNT_MS_$fs $(( $(ms) - t_fs ))"
done

nbd-client -d /dev/nbd0
echo "SIZE_AFTER_DISCONNECT_SECTORS $(cat /sys/block/nbd0/size)"
kill "$(cat /run/nbdkit.pid)"
echo "NBD_SCRIPT_MS $(( $(ms) - t0 ))"

echo 'console.log("DENO_VERSION", Deno.version.deno)' > /tmp/trivial.ts
t1=$(ms)
deno run /tmp/trivial.ts
echo "DENO_TRIVIAL_MS $(( $(ms) - t1 ))"

printf 'import * as grpc from "@grpc/grpc-js";\nconsole.log("GRPC_SERVER", typeof grpc.Server);\n' \
  > /tmp/grpc.ts
t2=$(ms)
deno run -A --config ${REPO_DIR}/deno.json /tmp/grpc.ts
echo "DENO_GRPC_MS $(( $(ms) - t2 ))"
`;

Deno.test("VM: nbd module, NBD over a unix socket, ext4/xfs/btrfs, and Deno run in the guest", async () => {
  const result = await runInVm({ script: SMOKE_SCRIPT, timeoutMs: 300_000 });
  const context = `guest output:\n${result.output}`;
  assert.equal(result.exitCode, 0, context);
  const report = parseReport(result.output);

  for (const i of [0, 1, 2, 3]) assert.equal(report.get(`DEV_nbd${i}`), "present", context);
  assert.equal(report.get("DEV_nbd4"), "absent", context);
  assert.equal(report.get("SIZE_CONNECTED_SECTORS"), String(1024 ** 3 / 512), context);
  assert.equal(report.get("BLOCK_SIZE_BYTES"), "4096", context);
  for (const fs of ["ext4", "xfs", "btrfs"]) {
    assert.equal(report.get(`FS_${fs}`), `${fs} written-on-${fs}`, context);
  }
  assert.equal(report.get("SIZE_AFTER_DISCONNECT_SECTORS"), "0", context);
  assert.equal(report.get("DENO_VERSION"), Deno.version.deno, context);
  assert.equal(report.get("GRPC_SERVER"), "function", context);

  const timingsMs = {
    boot: Math.round(result.bootMs),
    modprobeAndAttach: Number(report.get("ATTACH_MS")),
    ext4: Number(report.get("MKFS_MOUNT_MS_ext4")),
    xfs: Number(report.get("MKFS_MOUNT_MS_xfs")),
    btrfs: Number(report.get("MKFS_MOUNT_MS_btrfs")),
    nbdPart: Number(report.get("NBD_SCRIPT_MS")),
    denoTrivial: Number(report.get("DENO_TRIVIAL_MS")),
    denoGrpc: Number(report.get("DENO_GRPC_MS")),
    total: Math.round(result.totalMs),
  };
  console.log("VM timings (ms):", JSON.stringify(timingsMs));
});

Deno.test("VM: a hung script is killed at the bound and the error carries the console tail", async () => {
  const started = performance.now();
  let error: unknown;
  try {
    await runInVm({
      // nbdsMax rides on the kernel command line, so a plain modprobe obeys it.
      script: "modprobe nbd\necho NBD_DEVICES $(ls /sys/block | grep -c '^nbd')\n" +
        "echo guest-is-about-to-hang\nsleep 100000\n",
      timeoutMs: 45_000,
      nbdsMax: 2,
    });
  } catch (caught) {
    error = caught;
  }
  const elapsedMs = performance.now() - started;
  assert.ok(error instanceof VmError, `expected a VmError, got ${error}`);
  assert.ok(elapsedMs >= 45_000 && elapsedMs < 55_000, `killed after ${elapsedMs} ms`);
  assert.match(error.message, /did not finish within 45000 ms \(the script was running\)/);
  assert.match(error.consoleTail, /guest-is-about-to-hang/);
  assert.match(error.consoleTail, /NBD_DEVICES 2\b/);
  assert.match(error.message, /guest-is-about-to-hang/);
});
