/**
 * The end-to-end tier's images, built here without a registry (build.sh beside
 * this file) and imported into a containerd. Pods name them with
 * `imagePullPolicy: Never` or `IfNotPresent`.
 *
 * @example
 * ```ts
 * await buildAndImportImages("/run/zerofs-csi-e2e/node-x/containerd.sock");
 * // a pod spec: { image: E2E_IMAGES.driver, imagePullPolicy: "Never" }
 * ```
 *
 * @module
 */

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { runTool } from "../../../blockdev/mod.ts";

const BUILD_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), "build.sh");
/** A first build debootstraps Debian and fetches npm packages: minutes, not seconds. */
const BUILD_TIMEOUT_MS = 30 * 60_000;

/** The images build.sh makes, as pods name them. */
export const E2E_IMAGES = {
  /** containerd's sandbox image (pause.c). */
  pause: "localhost/pause:local",
  /** Deno and the driver's sources on Debian with the node's host tools. */
  driver: "zerofs-csi:dev",
  /** The pinned ZeroFS; the tag is the release the driver reads. */
  zerofs: "localhost/zerofs:0.16.2",
  /**
   * A STAND-IN for node-driver-registrar (tests/e2e/registrar_standin.ts), which the
   * proxy does not serve; `/csi-node-driver-registrar` runs it, as the exec probe does.
   */
  registrarStandin: "localhost/node-driver-registrar-standin:dev",
  /**
   * A STAND-IN for livenessprobe (tests/e2e/livenessprobe_standin.ts), which the proxy
   * does not serve; `/livenessprobe` runs it.
   */
  livenessprobeStandin: "localhost/livenessprobe-standin:dev",
  /** The pinned MinIO (tests/fixtures/s3.ts's MINIO_VERSION), entrypoint the binary, HOME=/tmp. */
  minio: "localhost/minio:v0.0.0-20260212201848-7aac2a2c5b7c",
  /** The pinned mc (.ci/install's MC_VERSION), entrypoint the binary, HOME=/tmp. */
  mc: "localhost/mc:v0.0.0-20250313080218-cf909e1063a9",
} as const;

/** A CSI sidecar's image: `localhost/<binary name>:<version the binary reports>`. */
export function sidecarImage(name: string, version: string): string {
  return `localhost/${name}:${version}`;
}

/**
 * Runs build.sh: builds what changed, imports into the containerd at `address`
 * (namespace k8s.io) what it lacks. Throws a ToolError with build.sh's stderr tail.
 */
export async function buildAndImportImages(address: string): Promise<void> {
  await runTool(BUILD_SCRIPT, ["--address", address], { timeoutMs: BUILD_TIMEOUT_MS });
}
