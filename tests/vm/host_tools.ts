/**
 * Host-side facts the VM harness needs: which kernel to boot, where its
 * modules are, and that the host tools exist (failing loudly with the Debian
 * package to install when they do not).
 *
 * @module
 */

/** The guest kernel: its image and its module tree on the host (shared with the guest). */
export interface GuestKernel {
  /** e.g. `6.1.0-56-amd64` */
  version: string;
  /** e.g. `/boot/vmlinuz-6.1.0-56-amd64` */
  imagePath: string;
  /** e.g. `/lib/modules/6.1.0-56-amd64` */
  modulesDir: string;
}

/** Host tools the harness runs, with the Debian package that provides each. */
const TOOL_PACKAGES: Record<string, string> = {
  "qemu-system-x86_64": "qemu-system-x86",
  "busybox": "busybox-static",
  "cpio": "cpio",
  "modprobe": "kmod",
};

/**
 * Resolve a host tool to its absolute path.
 *
 * @throws Error naming the Debian package when the tool is missing.
 */
export async function requireHostTool(tool: string): Promise<string> {
  for (
    const dir of ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
  ) {
    const path = `${dir}/${tool}`;
    try {
      const info = await Deno.stat(path);
      if (info.isFile && (info.mode ?? 0) & 0o111) return path;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  const pkg = TOOL_PACKAGES[tool] ?? "(unknown package)";
  throw new Error(
    `Cannot run the VM harness: host tool "${tool}" is missing; install it with ` +
      `"apt-get install -y ${pkg}"`,
  );
}

/**
 * Pick the newest `/boot/vmlinuz-*` that has a matching `/lib/modules/<version>`.
 *
 * @throws Error naming `linux-image-amd64` when no such kernel is installed.
 */
export async function findGuestKernel(): Promise<GuestKernel> {
  const versions: string[] = [];
  for await (const entry of Deno.readDir("/boot")) {
    if (!entry.name.startsWith("vmlinuz-")) continue;
    const version = entry.name.slice("vmlinuz-".length);
    if (await isDirectory(`/lib/modules/${version}/kernel`)) versions.push(version);
  }
  if (versions.length === 0) {
    throw new Error(
      "Cannot boot a guest kernel: no /boot/vmlinuz-* with modules under /lib/modules; " +
        'install one with "apt-get install -y linux-image-amd64"',
    );
  }
  versions.sort(compareKernelVersions);
  const version = versions[versions.length - 1];
  return {
    version,
    imagePath: `/boot/vmlinuz-${version}`,
    modulesDir: `/lib/modules/${version}`,
  };
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

function compareKernelVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/).map((part) => Number.parseInt(part, 10) || 0);
  const pb = b.split(/[.-]/).map((part) => Number.parseInt(part, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const diff = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (diff !== 0) return diff;
  }
  return a.localeCompare(b);
}

/** The host's Deno cache directory (what `deno info` calls DENO_DIR). */
export async function findHostDenoDir(): Promise<string> {
  const fromEnv = Deno.env.get("DENO_DIR");
  if (fromEnv) return fromEnv;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  if (!out.success) {
    throw new Error(
      `Cannot find the host's DENO_DIR: "deno info --json" exited with code ${out.code}: ` +
        new TextDecoder().decode(out.stderr).trim(),
    );
  }
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as { denoDir?: string };
  if (!info.denoDir) {
    throw new Error('Cannot find the host\'s DENO_DIR: "deno info --json" has no denoDir');
  }
  return info.denoDir;
}
