/**
 * Builds (once, then reuses) the guest's initramfs: busybox-static, the
 * modules that mount the host root over virtio-9p, and an `/init` that
 * switch_roots into that root and hands over to the per-run stage-2 script.
 *
 * @module
 */

import { type GuestKernel, requireHostTool } from "./host_tools.ts";
import { pathExists } from "../../blockdev/mod.ts";

/** The 9p mount tag the harness gives the host root. */
export const HOST_ROOT_TAG = "hostroot";
/** Kernel command-line key that names the run directory (read by `/init`). */
export const RUN_DIR_PARAM = "zvm.run";
/** Kernel command-line key that names the host's DENO_DIR (read by `/init`). */
export const DENO_DIR_PARAM = "zvm.denodir";
/** Kernel command-line key that names the repository the guest works in (read by `/init`). */
export const REPO_DIR_PARAM = "zvm.repo";
/** The guest's DENO_DIR: on tmpfs, because Deno's sqlite caches fail on 9p. */
export const GUEST_DENO_DIR = "/run/zvm/deno-dir";
/** Name of the stage-2 script inside a run directory. */
export const STAGE2_FILE = "stage2.sh";

/** Modules `/init` loads, in this order with their dependencies first. */
const BOOT_MODULES = ["virtio_pci", "9pnet_virtio", "9p", "overlay"];
/**
 * virtio's transport limit in 6.1 is about 500 KiB; a larger msize is cut
 * down with a warning, a smaller one costs round trips.
 */
const NINEP_MSIZE_BYTES = 512_000;

/** Options for {@linkcode ensureInitramfs}. */
export interface InitramfsOptions {
  /** Where built images are kept, keyed by content hash. */
  cacheDir: string;
}

/** A ready initramfs image. */
export interface Initramfs {
  path: string;
  /** False when a cached image was reused. */
  built: boolean;
  buildMs: number;
}

/**
 * Return the initramfs for `kernel`, building it only when no image with the
 * same kernel version, module list and `/init` exists in the cache.
 */
export async function ensureInitramfs(
  kernel: GuestKernel,
  options: InitramfsOptions,
): Promise<Initramfs> {
  const started = performance.now();
  const modulePaths = await resolveModuleLoadOrder(kernel);
  const init = renderInit(modulePaths);
  const busybox = await requireHostTool("busybox");
  const key = await sha256Hex(
    [kernel.version, busybox, (await Deno.stat(busybox)).size, ...modulePaths, init].join("\n"),
  );
  const path = `${options.cacheDir}/initramfs-${kernel.version}-${key.slice(0, 16)}.cpio.gz`;
  if (await pathExists(path)) return { path, built: false, buildMs: performance.now() - started };

  await Deno.mkdir(options.cacheDir, { recursive: true });
  const staging = await Deno.makeTempDir({ dir: options.cacheDir, prefix: "initramfs-build-" });
  try {
    await populate(staging, { busybox, modulePaths, init });
    const partial = `${path}.${crypto.randomUUID()}.partial`;
    await writeCpioGz(staging, partial);
    await Deno.rename(partial, path);
  } finally {
    await Deno.remove(staging, { recursive: true });
  }
  return { path, built: true, buildMs: performance.now() - started };
}

/** Ask the host's modprobe for each boot module's dependency chain, in load order. */
async function resolveModuleLoadOrder(kernel: GuestKernel): Promise<string[]> {
  const modprobe = await requireHostTool("modprobe");
  const ordered: string[] = [];
  for (const module of BOOT_MODULES) {
    const out = await new Deno.Command(modprobe, {
      args: ["--show-depends", "-S", kernel.version, module],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(
        `Cannot build the initramfs: modprobe could not resolve module "${module}" for ` +
          `kernel ${kernel.version}: ${new TextDecoder().decode(out.stderr).trim()}`,
      );
    }
    for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
      const [verb, path] = line.trim().split(/\s+/);
      if (verb !== "insmod" || ordered.includes(path)) continue;
      if (!path.endsWith(".ko")) {
        // busybox insmod cannot decompress; say so instead of failing at boot.
        throw new Error(`Cannot build the initramfs: module ${path} is compressed`);
      }
      ordered.push(path);
    }
  }
  return ordered;
}

/**
 * The guest's `/init` (busybox sh). It does all of the guest's set-up with
 * busybox applets: under TCG every dynamically linked program exec'd from 9p
 * costs a few hundred milliseconds. Any failure powers off at once so the
 * host sees a short console log rather than a timeout.
 */
function renderInit(modulePaths: readonly string[]): string {
  const insmods = modulePaths
    .map((path) => `insmod ${path} || fail "insmod ${path}"`)
    .join("\n");
  return `#!/bin/busybox sh
/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin /proc /sys /dev /newroot
/bin/busybox --install -s
fail() {
  echo "zvm-init: cannot start the test script: $*" > /dev/console
  echo o > /proc/sysrq-trigger
  sleep 60
}
cmdline_value() { sed -n "s/.*$1=\\([^ ]*\\).*/\\1/p" /proc/cmdline; }
mount -t proc proc /proc || fail "mount /proc"
mount -t sysfs sysfs /sys || fail "mount /sys"
mount -t devtmpfs devtmpfs /dev || fail "mount /dev"
run_dir=$(cmdline_value ${RUN_DIR_PARAM.replace(".", "\\\\.")})
host_deno_dir=$(cmdline_value ${DENO_DIR_PARAM.replace(".", "\\\\.")})
repo_dir=$(cmdline_value ${REPO_DIR_PARAM.replace(".", "\\\\.")})
[ -n "$run_dir" ] && [ -n "$host_deno_dir" ] || fail "${RUN_DIR_PARAM}= or ${DENO_DIR_PARAM}= missing"
${insmods}
# cache=loose: fastest under TCG; safe because the host does not change files under a
# running test, and guest writes reach the host by stage 2's sync before it reports.
mount -t 9p -o trans=virtio,version=9p2000.L,msize=${NINEP_MSIZE_BYTES},cache=loose \\
  ${HOST_ROOT_TAG} /newroot || fail "mount the host root over 9p"
# The host's /run and /tmp are plain directories: every guest socket must land on tmpfs.
# A repository checked out below them (a CI clone in /tmp) is bound back in.
mkdir -p /hostroot && mount --bind /newroot /hostroot || fail "bind the host root"
mount -t tmpfs -o mode=0755 tmpfs /newroot/run || fail "mount /run"
mount -t tmpfs -o mode=1777 tmpfs /newroot/tmp || fail "mount /tmp"
case "$repo_dir" in
  /run/*|/tmp/*)
    mkdir -p "/newroot$repo_dir" && mount --bind "/hostroot$repo_dir" "/newroot$repo_dir" \
      || fail "bind the repository $repo_dir";;
esac
for fs in proc sys dev; do mount --move /$fs /newroot/$fs || fail "move /$fs"; done
mkdir -p /newroot/dev/pts /newroot/dev/shm /newroot/run/lock || fail "mkdir under /dev"
mount -t devpts -o mode=620,ptmxmode=666 devpts /newroot/dev/pts || fail "mount /dev/pts"
mount -t tmpfs tmpfs /newroot/dev/shm || fail "mount /dev/shm"
ln -sfn /proc/self/fd /newroot/dev/fd
ln -sfn /proc/self/fd/0 /newroot/dev/stdin
ln -sfn /proc/self/fd/1 /newroot/dev/stdout
ln -sfn /proc/self/fd/2 /newroot/dev/stderr
hostname zvm
ip link set lo up || fail "bring up lo"
# DENO_DIR on tmpfs with the host's npm cache as the read-only lower layer of
# an overlay (writes stay in the guest). Deno's sqlite caches start empty:
# they fail on 9p, and the host may be writing its own while we read. The
# lower layer is read through /hostroot: a host DENO_DIR under /tmp or /run
# is hidden under the guest's tmpfs at /newroot.
deno_npm=/newroot${GUEST_DENO_DIR}/npm
mkdir -p /newroot/run/zvm/npm-upper /newroot/run/zvm/npm-work $deno_npm || fail "mkdir DENO_DIR"
mount -t overlay overlay \\
  -o lowerdir=/hostroot$host_deno_dir/npm,upperdir=/newroot/run/zvm/npm-upper,workdir=/newroot/run/zvm/npm-work \\
  $deno_npm || fail "mount the host's npm cache as an overlay on DENO_DIR"
exec switch_root /newroot /bin/bash "$run_dir/${STAGE2_FILE}"
`;
}

async function populate(
  root: string,
  parts: { busybox: string; modulePaths: readonly string[]; init: string },
): Promise<void> {
  await Deno.mkdir(`${root}/bin`, { recursive: true });
  await Deno.copyFile(parts.busybox, `${root}/bin/busybox`);
  await Deno.chmod(`${root}/bin/busybox`, 0o755);
  for (const path of parts.modulePaths) {
    const target = `${root}${path}`;
    await Deno.mkdir(target.slice(0, target.lastIndexOf("/")), { recursive: true });
    await Deno.copyFile(path, target);
  }
  await Deno.writeTextFile(`${root}/init`, parts.init, { mode: 0o755 });
  await Deno.chmod(`${root}/init`, 0o755);
}

/** `find . | cpio -o -H newc | gzip`, without a shell. */
async function writeCpioGz(root: string, outPath: string): Promise<void> {
  const files = await listTree(root);
  const cpio = new Deno.Command(await requireHostTool("cpio"), {
    args: ["--quiet", "-o", "-H", "newc", "-R", "0:0"],
    cwd: root,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = cpio.stdin.getWriter();
  await writer.write(new TextEncoder().encode(files.join("\n") + "\n"));
  await writer.close();
  const out = await Deno.open(outPath, { write: true, create: true, truncate: true });
  const [status, stderr] = await Promise.all([
    cpio.status,
    new Response(cpio.stderr).text(),
    cpio.stdout.pipeThrough(new CompressionStream("gzip")).pipeTo(out.writable),
  ]);
  if (!status.success) {
    throw new Error(`Cannot build the initramfs: cpio exited with code ${status.code}: ${stderr}`);
  }
}

async function listTree(root: string, relative = "."): Promise<string[]> {
  const found = [relative];
  for await (const entry of Deno.readDir(`${root}/${relative}`)) {
    const child = `${relative}/${entry.name}`;
    if (entry.isDirectory) found.push(...await listTree(root, child));
    else found.push(child);
  }
  return found;
}

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}
