/**
 * Open a volume's filesystem with the same ZeroFS the node runs, while the
 * volume is not staged: to read or plant the driver's files inside it
 * (`/.zerofs-csi.json`, `/.nbd/disk`) the way only ZeroFS itself can, since
 * the bytes in S3 are ZeroFS's encrypted database, not files.
 *
 * @module
 */

import { join } from "node:path";
import { createHash } from "node:crypto";
import {
  type InstanceSpec,
  NinepClient,
  ProcessRunner,
  renderConfigToml,
  resolveSettings,
  type VolumePaths,
  volumePaths,
} from "../../zerofs/mod.ts";
import type { LocalS3 } from "../fixtures/s3.ts";
import { type NodeEnvironment, TEST_ENCRYPTION_PASSWORD, TEST_STORAGE_URL } from "./node_env.ts";

/**
 * Start a private ZeroFS on `volumeId`'s prefix (state under the
 * environment's directory, not the node's), run `fn` with a 9P client on it,
 * then stop it with SIGTERM (ZeroFS flushes). The node must not have the
 * volume staged: ZeroFS allows one writer per prefix.
 */
export async function withVolumeFs<T>(
  env: NodeEnvironment,
  volumeId: string,
  fn: (fs: NinepClient) => Promise<T>,
): Promise<T> {
  const runner = new ProcessRunner({ zerofsBin: env.zerofsBin, readyTimeoutMs: 60_000 });
  const paths = volumePaths(join(env.dir, "offline"), volumeId);
  await Deno.mkdir(paths.dir, { recursive: true, mode: 0o700 });
  const spec = await realZeroFsSpec(runner, {
    volumeId,
    paths,
    storageURL: TEST_STORAGE_URL,
    s3: env.s3,
    password: TEST_ENCRYPTION_PASSWORD,
    cacheDir: join(env.dir, "offline-cache"),
  });
  await runner.ensure(spec);
  try {
    const client = await NinepClient.connect(paths.ninepSocket, { timeoutMs: 10_000 });
    try {
      return await fn(client);
    } finally {
      await client.close();
    }
  } finally {
    await runner.stop(volumeId, paths.dir);
    await Deno.remove(paths.dir, { recursive: true });
  }
}

/** What {@linkcode realZeroFsSpec} needs besides the runner. */
export interface RealSpecOptions {
  volumeId: string;
  paths: VolumePaths;
  /** The volume lives at `<storageURL>/<volumeId>` on `s3`. */
  storageURL: string;
  s3: LocalS3;
  password: string;
  cacheDir: string;
  cacheDiskSizeGB?: number;
}

/**
 * A runner spec for the real ZeroFS, its `config.toml` rendered by the
 * driver for the runner's release, with the password and the S3 server's
 * credentials as the child's environment.
 */
export async function realZeroFsSpec(
  runner: ProcessRunner,
  o: RealSpecOptions,
): Promise<InstanceSpec> {
  const settings = resolveSettings({
    parameters: {
      storageURL: o.storageURL,
      awsEndpoint: o.s3.endpoint,
      awsAllowHTTP: "true",
      cacheDir: o.cacheDir,
      cacheDiskSizeGB: String(o.cacheDiskSizeGB ?? 1),
    },
  });
  const secretEnv = {
    ZEROFS_ENCRYPTION_PASSWORD: o.password,
    AWS_ACCESS_KEY_ID: o.s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: o.s3.secretAccessKey,
  };
  const version = await runner.version();
  const configToml = renderConfigToml(settings, {
    ...runner.view({ paths: o.paths, settings, secrets: {} }),
    volumeId: o.volumeId,
    version,
    secretEnvNames: Object.keys(secretEnv),
  });
  return {
    volumeId: o.volumeId,
    stateDir: o.paths.dir,
    configToml,
    configHash: createHash("sha256").update(configToml).digest("hex"),
    secretEnv,
    readOnly: false,
    ninepSocket: o.paths.ninepSocket,
    nbdSocket: o.paths.nbdSocket,
    exportName: "",
    settings,
    zerofsVersion: version,
  };
}

/** The driver's record inside the volume, parsed; null when absent. */
export async function readRecordFile(fs: NinepClient): Promise<Record<string, unknown> | null> {
  try {
    return JSON.parse(
      new TextDecoder().decode(await fs.readFile("/.zerofs-csi.json", { maxBytes: 65536 })),
    );
  } catch (e) {
    if ((e as { errno?: number }).errno === 2) return null;
    throw e;
  }
}
