/**
 * The runner contract: what the node asks of whatever runs one volume's
 * ZeroFS (a local process or a pod), and what it gets back.
 *
 * @module
 */

import type { VolumePaths } from "./paths.ts";
import type { VolumeSettings } from "./settings.ts";
import type { SecretValues } from "./secrets.ts";
import type { ZeroFsVersion } from "./version.ts";

/** Everything a runner needs to run one volume's ZeroFS. */
export interface InstanceSpec {
  volumeId: string;
  /** Host path of the volume's state directory. */
  stateDir: string;
  /** Rendered config.toml text (written by the runner into the state dir). */
  configToml: string;
  /** sha256 of configToml + readOnly; a change restarts the instance. */
  configHash: string;
  /** Secret values handed to ZeroFS as environment (never argv, never logged). */
  secretEnv: Record<string, string>;
  /** Start as a reader (`run --read-only`). */
  readOnly: boolean;
  /** Host paths the node agent connects to for readiness. */
  ninepSocket: string;
  nbdSocket: string;
  /** Export that must be listed for readiness (`disk`); empty = only the handshake. */
  exportName: string;
  /** The volume's resolved settings (image, resources, secret names for the pod runner). */
  settings: VolumeSettings;
  /** The ZeroFS release the config was rendered for. */
  zerofsVersion: ZeroFsVersion;
}

/** How ZeroFS started by a runner sees the volume's files, and how it gets its secrets. */
export interface RunnerView {
  /** Paths as ZeroFS sees them (pod mode: inside the container). */
  ninepSocket: string;
  nbdSocket: string;
  cacheDir: string;
  /** Environment variables ZeroFS will have, for `${VAR}` references in config.toml. */
  secretEnvNames: string[];
  /** Secret values the runner hands over itself (process mode); pod mode: none. */
  secretEnv: Record<string, string>;
}

/** What a runner knows about one instance. */
export interface InstanceStatus {
  volumeId: string;
  running: boolean;
  ready: boolean;
  /** Process pid (process runner) or pod name (pod runner). */
  pid?: number;
  podName?: string;
  configHash?: string;
  /** Why it is not ready, when known. */
  reason?: string;
}

/** Owns the ZeroFS instances of this node (process or pod). */
export interface ZeroFsRunner {
  /**
   * Whether this runner's ZeroFS creates its sockets without group or other
   * bits (the process runner's launcher sets umask 077). When not (a pod, whose
   * umask the driver does not set), the node removes those bits itself.
   */
  readonly createsPrivateSockets: boolean;
  /** The ZeroFS release this runner would start for a volume with these settings. */
  version(settings: VolumeSettings): Promise<ZeroFsVersion>;
  /** Where this runner's ZeroFS finds the volume's sockets and cache, and its secrets. */
  view(opts: { paths: VolumePaths; settings: VolumeSettings; secrets: SecretValues }): RunnerView;
  /** Running with exactly this config and ready (real handshakes), or throws. */
  ensure(spec: InstanceSpec): Promise<InstanceStatus>;
  /** SIGTERM, wait for exit up to the grace period (then SIGKILL + warning). Idempotent. */
  stop(volumeId: string, stateDir: string): Promise<void>;
  status(volumeId: string, stateDir: string): Promise<InstanceStatus>;
}
