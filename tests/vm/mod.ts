/**
 * Real-kernel tests: boot Debian's kernel under qemu TCG with this host's root
 * shared over virtio-9p and run a script inside ({@linkcode runInVm}). Boot
 * once and run many scenarios per script: a boot costs ~10 s, a `deno run`
 * ~2 s, loading grpc-js ~8 s.
 *
 * @module
 */

export {
  DEFAULT_VM_WORK_DIR,
  REPO_DIR,
  runInVm,
  type RunInVmOptions,
  VmError,
  type VmResult,
} from "./harness.ts";
export { GUEST_DENO_DIR } from "./initramfs.ts";
