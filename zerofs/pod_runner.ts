/**
 * The `pod` ZeroFS runner: one Pod per volume in the driver namespace, pinned
 * to this node, so ZeroFS survives node-agent restarts and upgrades.
 *
 * The pod's only hostPath is the volume's state directory, mounted at
 * `/zerofs`: ZeroFS reads `/zerofs/config.toml` (written here, 0600) and
 * creates its sockets there, which the node agent reaches through the host
 * path. The cache is an `emptyDir` at `/cache` with a size limit. Secrets reach
 * ZeroFS as `secretKeyRef` environment resolved by the kubelet — the agent
 * never reads a secret value.
 *
 * Pod name `zerofs-<volume dir>-<node hash>`: deterministic, so a pod left by
 * a crashed agent is found and adopted; per node, so readers of one volume on
 * several nodes never collide and no node ever deletes another node's pod.
 * Annotations carry the volume ID, the config hash and a hash of the whole
 * pod; a pod whose hash differs is deleted, and gone, before its successor is
 * created (one writer per volume).
 *
 * `restartPolicy: Never`: after a ZeroFS restart, acknowledged but unflushed
 * writes may be gone, and a kernel NBD device reconnecting to the new server
 * would hand the mounted filesystem a disk that silently lost them. A dead
 * ZeroFS therefore stays dead; `status()` reports it, the volume condition
 * turns abnormal, and the next stage replaces the pod.
 *
 * Every wait is bounded and follows the pod with a watch from the listed
 * resourceVersion. Callers serialise calls per volume (the CSI per-volume lock).
 *
 * Least privilege: no capabilities, seccomp `RuntimeDefault`, no privilege
 * escalation, a read-only root filesystem (ZeroFS writes only its sockets in
 * `/zerofs` and its cache in `/cache`). ZeroFS keeps uid 0, without
 * capabilities, for one reason: the state directory is root's and 0700, and
 * the node agent attaches only to sockets owned by root (they carry
 * unauthenticated 9P and NBD). As uid 0, ZeroFS owns that directory, so plain
 * owner permissions let it read config.toml (0600) and create its sockets, and
 * the sockets it creates are root's. Any other uid could do neither without
 * CAP_DAC_OVERRIDE, and its sockets would be refused.
 *
 * With `envoyEnabled` (the original driver's option), an Envoy sidecar runs
 * as a native sidecar (an init container with `restartPolicy: Always`, as the
 * original driver added it): it starts before ZeroFS and stops after it, so
 * ZeroFS's final flush still reaches the store through it. It runs as uid
 * 101, also without capabilities.
 *
 * @module
 */

import { createHash } from "node:crypto";
import type {
  V1Container,
  V1ContainerStatus,
  V1EnvVar,
  V1Pod,
  V1ResourceRequirements,
  V1SecurityContext,
  V1Volume,
} from "@kubernetes/client-node";
import { writeFileAtomic } from "./atomic_file.ts";
import { apiErrorMessage, apiStatusCode, type KubeClient, PodWatch } from "../kube/mod.ts";
import {
  checkSocketPath,
  POD_STATE_DIR,
  stateDirFiles,
  volumeDirName,
  type VolumePaths,
} from "./paths.ts";
import { checkReady, waitUntilReady } from "./readiness.ts";
import { zerofsRunArgs } from "./run_argv.ts";
import type { RunnerLog } from "./process_runner.ts";
import type { VolumeSettings } from "./settings.ts";
import { imageVersion, type ZeroFsVersion } from "./version.ts";
import {
  AWS_CREDENTIALS_SECRET_KEYS,
  ENCRYPTION_PASSWORD_SECRET_KEY,
  ENV_AWS_ACCESS_KEY_ID,
  ENV_AWS_SECRET_ACCESS_KEY,
  ENV_ENCRYPTION_PASSWORD,
  type SecretValues,
} from "./secrets.ts";
import type { InstanceSpec, InstanceStatus, RunnerView, ZeroFsRunner } from "./runner.ts";
import { removeSockets } from "./stale_sockets.ts";
import { SettingsError, ZeroFsNotReadyError } from "./types.ts";

/** The state directory as ZeroFS sees it inside its pod. */
const POD_FILES = stateDirFiles(POD_STATE_DIR);
/** Where the cache emptyDir appears inside the ZeroFS container. */
export const POD_CACHE_DIR = "/cache";
/** The ZeroFS container's name. */
export const POD_CONTAINER = "zerofs";
/** The Envoy sidecar's container name (as in the original driver). */
export const ENVOY_CONTAINER = "envoy";
/** Where the sidecar's ConfigMap is mounted; Envoy's images read `envoy.yaml` there. */
export const ENVOY_CONFIG_DIR = "/etc/envoy";
/** The uid/gid Envoy runs as: the `envoy` user of Envoy's own images. */
export const ENVOY_UID = 101;
/** Logged whenever a ZeroFS pod with the sidecar is created (the original driver's README warning). */
export const ENVOY_FENCING_WARNING =
  "Envoy sidecar enabled: retries can break ZeroFS's fencing guarantees (a retried write can " +
  "reach the store twice); retry only where the request never reached the store";

/** Labels and annotations of ZeroFS pods. */
export const POD_LABEL_NAME = "app.kubernetes.io/name";
export const POD_LABEL_VOLUME_DIR = "zerofs.csi.driver/volume-dir";
export const POD_LABEL_NODE = "zerofs.csi.driver/node";
export const POD_ANNOTATION_VOLUME_ID = "zerofs.csi.driver/volume-id";
export const POD_ANNOTATION_CONFIG_HASH = "zerofs.csi.driver/config-hash";
export const POD_ANNOTATION_POD_HASH = "zerofs.csi.driver/pod-hash";

/** ZeroFS's final flush can upload ~256 MiB: budget at least 120 s (zerofs-facts.md). */
const DEFAULT_GRACE_SECONDS = 120;
/** A ZeroFS that never became ready has nothing worth flushing for long. */
const FAILED_START_GRACE_SECONDS = 10;
/** Beyond the grace period: the kubelet's sync and the runtime's teardown. */
const DELETE_MARGIN_SECONDS = 60;
const STATUS_CHECK_TIMEOUT_MS = 2_000;
/** Room above the ZeroFS disk cache in the emptyDir, so the kubelet never evicts for it. */
const CACHE_HEADROOM_MIN_MB = 1_000;
const CACHE_HEADROOM_FRACTION = 0.1;

/** Options for {@linkcode PodRunner}. */
export interface PodRunnerOptions {
  kube: KubeClient;
  /** The driver namespace (pods are created here). */
  namespace: string;
  /** This node's name (`spec.nodeName` of every pod). */
  nodeName: string;
  /** `terminationGracePeriodSeconds` (≥ 120). Default 120. */
  graceSeconds?: number;
  log?: RunnerLog;
}

/** The pod's name for a volume on a node. */
export function zerofsPodName(volumeId: string, nodeName: string): string {
  return `zerofs-${volumeDirName(volumeId)}-${shortHash(nodeName)}`;
}

/** The environment that hands the Secrets named in `settings` to ZeroFS (secretKeyRef). */
export function secretEnvVars(settings: VolumeSettings): V1EnvVar[] {
  const env: V1EnvVar[] = [];
  if (settings.encryptionPasswordSecretName) {
    env.push({
      name: ENV_ENCRYPTION_PASSWORD,
      valueFrom: {
        secretKeyRef: {
          name: settings.encryptionPasswordSecretName,
          key: ENCRYPTION_PASSWORD_SECRET_KEY,
        },
      },
    });
  }
  const aws = settings.awsCredentialsSecretName;
  if (aws) {
    // Same lookup order as the original driver (AWS_ACCESS_KEY_ID, else username):
    // the kubelet skips a missing optional key and a later entry of the same name
    // wins, so the preferred key comes last. A session token cannot be offered this
    // way (config.toml must not name a variable that may be unset): not supported.
    const pairs = [
      [ENV_AWS_ACCESS_KEY_ID, AWS_CREDENTIALS_SECRET_KEYS.accessKeyId],
      [ENV_AWS_SECRET_ACCESS_KEY, AWS_CREDENTIALS_SECRET_KEYS.secretAccessKey],
    ] as const;
    for (const [name, keys] of pairs) {
      for (const key of [...keys].reverse()) {
        env.push({ name, valueFrom: { secretKeyRef: { name: aws, key, optional: true } } });
      }
    }
  }
  return env;
}

/** `sizeLimit` of the cache emptyDir: the disk cache plus headroom (max(1 GB, 10 %)). */
export function cacheSizeLimit(cacheDiskSizeGB: number): string {
  const cacheMb = cacheDiskSizeGB * 1_000;
  const headroomMb = Math.max(CACHE_HEADROOM_MIN_MB, cacheMb * CACHE_HEADROOM_FRACTION);
  return `${Math.ceil(cacheMb + headroomMb)}M`;
}

/**
 * Runs each volume's ZeroFS as a Pod on this node.
 *
 * @example
 * ```ts
 * const runner = new PodRunner({ kube: await createKubeClient(), namespace: "zerofs", nodeName: "n1" });
 * await runner.ensure(spec); // pod Running with exactly spec.configHash, handshakes pass
 * await runner.stop(spec.volumeId, spec.stateDir);
 * ```
 */
export class PodRunner implements ZeroFsRunner {
  /** The container's umask is the image's, not the driver's. */
  readonly createsPrivateSockets = false;
  readonly #kube: KubeClient;
  readonly #namespace: string;
  readonly #nodeName: string;
  readonly #graceSeconds: number;
  readonly #log: RunnerLog;

  constructor(opts: PodRunnerOptions) {
    const grace = opts.graceSeconds ?? DEFAULT_GRACE_SECONDS;
    if (!Number.isSafeInteger(grace) || grace < DEFAULT_GRACE_SECONDS) {
      throw new RangeError(
        `graceSeconds must be a whole number ≥ ${DEFAULT_GRACE_SECONDS} (ZeroFS's final flush)`,
      );
    }
    this.#kube = opts.kube;
    this.#namespace = opts.namespace;
    this.#nodeName = opts.nodeName;
    this.#graceSeconds = grace;
    this.#log = opts.log ?? { log() {} };
  }

  /** The release the volume's image runs, from its tag. */
  version(settings: VolumeSettings): Promise<ZeroFsVersion> {
    try {
      return Promise.resolve(imageVersion(settings.zerofsImage));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Container paths; secrets only as names (the kubelet resolves the Secrets). */
  view(opts: { paths: VolumePaths; settings: VolumeSettings; secrets: SecretValues }): RunnerView {
    if (!opts.settings.encryptionPasswordSecretName) {
      throw new SettingsError(
        `the pod runner needs "encryptionPasswordSecretName": name the Secret (key ` +
          `"${ENCRYPTION_PASSWORD_SECRET_KEY}") in the ConfigMap or the StorageClass parameters`,
      );
    }
    return {
      ninepSocket: POD_FILES.ninepSocket,
      nbdSocket: POD_FILES.nbdSocket,
      cacheDir: POD_CACHE_DIR,
      secretEnvNames: [...new Set(secretEnvVars(opts.settings).map((e) => e.name))],
      secretEnv: {},
    };
  }

  /** The pod this runner wants for `spec` (pure; exported for tests through the class). */
  podFor(spec: InstanceSpec): V1Pod {
    const s = spec.settings;
    const env = [
      ...secretEnvVars(s),
      ...(s.rustLog ? [{ name: "RUST_LOG", value: s.rustLog }] : []),
    ];
    const resources = resourcesOf(s);
    const envoy = s.envoyEnabled ? envoySidecar(s) : undefined;
    const pod: V1Pod = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: zerofsPodName(spec.volumeId, this.#nodeName),
        namespace: this.#namespace,
        labels: {
          [POD_LABEL_NAME]: "zerofs",
          "app.kubernetes.io/part-of": "zerofs-csi",
          [POD_LABEL_VOLUME_DIR]: volumeDirName(spec.volumeId),
          [POD_LABEL_NODE]: labelValue(this.#nodeName),
        },
        annotations: {
          [POD_ANNOTATION_VOLUME_ID]: spec.volumeId,
          [POD_ANNOTATION_CONFIG_HASH]: spec.configHash,
        },
      },
      spec: {
        nodeName: this.#nodeName,
        restartPolicy: "Never",
        priorityClassName: "system-node-critical",
        terminationGracePeriodSeconds: this.#graceSeconds,
        // Pinned by nodeName; no taint may evict a pod that serves a mounted volume.
        tolerations: [{ operator: "Exists" }],
        automountServiceAccountToken: false,
        enableServiceLinks: false,
        securityContext: { seccompProfile: { type: "RuntimeDefault" } },
        ...(envoy ? { initContainers: [envoy.container] } : {}),
        containers: [{
          name: POD_CONTAINER,
          image: s.zerofsImage,
          args: zerofsRunArgs(POD_FILES.configToml, spec.readOnly),
          ...(env.length > 0 ? { env } : {}),
          ...(resources ? { resources } : {}),
          // Without pods/log access, a failed start still shows its last log lines.
          terminationMessagePolicy: "FallbackToLogsOnError",
          // uid 0 without capabilities: see the module comment.
          securityContext: { ...RESTRICTED_CONTAINER, runAsUser: 0, runAsGroup: 0 },
          volumeMounts: [
            { name: "state", mountPath: POD_STATE_DIR },
            { name: "cache", mountPath: POD_CACHE_DIR },
          ],
        }],
        volumes: [
          { name: "state", hostPath: { path: spec.stateDir, type: "Directory" } },
          { name: "cache", emptyDir: { sizeLimit: cacheSizeLimit(s.cacheDiskSizeGB) } },
          ...(envoy ? [envoy.volume] : []),
        ],
      },
    };
    pod.metadata!.annotations![POD_ANNOTATION_POD_HASH] = createHash("sha256")
      .update(JSON.stringify(pod))
      .digest("hex");
    return pod;
  }

  /**
   * The pod Running with exactly this pod spec and ZeroFS ready (real
   * handshakes through the host paths), or throws `ZeroFsNotReadyError`
   * within `settings.podReadyTimeoutSeconds`. A matching pod (also one left
   * by a crashed agent) is adopted; any other pod of this volume on this node
   * is deleted and gone before the new one is created.
   */
  async ensure(spec: InstanceSpec): Promise<InstanceStatus> {
    checkSocketPath(spec.ninepSocket);
    checkSocketPath(spec.nbdSocket);
    const desired = this.podFor(spec);
    const name = desired.metadata!.name!;
    const timeoutMs = spec.settings.podReadyTimeoutSeconds * 1_000;
    await using watch = await PodWatch.open(this.#kube, this.#namespace, name);
    const existing = watch.pod;
    if (existing && reusable(existing, desired)) {
      this.#log.log("info", "adopting running ZeroFS pod", { volumeId: spec.volumeId, pod: name });
      await this.#waitReady(spec, watch, existing.metadata!.uid!, timeoutMs);
      return this.#status(spec.volumeId, watch.pod!, { ready: true });
    }
    if (existing) {
      this.#log.log("info", "replacing ZeroFS pod", {
        volumeId: spec.volumeId,
        pod: name,
        why: describePod(existing),
      });
      await this.#deleteAndWait(watch, existing, this.#graceSeconds);
    }
    await writeFileAtomic(stateDirFiles(spec.stateDir).configToml, spec.configToml);
    await removeSockets(spec);
    if (spec.settings.envoyEnabled) {
      this.#log.log("warn", ENVOY_FENCING_WARNING, { volumeId: spec.volumeId, pod: name });
    }
    const created = await this.#create(desired);
    this.#log.log("info", "ZeroFS pod created", { volumeId: spec.volumeId, pod: name });
    try {
      await this.#waitReady(spec, watch, created.metadata!.uid!, timeoutMs);
    } catch (e) {
      const current = watch.pod?.metadata?.uid === created.metadata!.uid ? watch.pod : created;
      await this.#deleteAndWait(watch, current!, FAILED_START_GRACE_SECONDS).catch((err) =>
        this.#log.log("warn", "could not remove the ZeroFS pod that did not become ready", {
          volumeId: spec.volumeId,
          pod: name,
          error: String(err),
        })
      );
      throw e;
    }
    return this.#status(spec.volumeId, watch.pod!, { ready: true });
  }

  /**
   * Delete the volume's pod with the full grace period (ZeroFS flushes on
   * SIGTERM) and wait until it is gone. Idempotent: no pod is success.
   */
  async stop(volumeId: string, stateDir: string): Promise<void> {
    const name = zerofsPodName(volumeId, this.#nodeName);
    await using watch = await PodWatch.open(this.#kube, this.#namespace, name);
    const pod = watch.pod;
    if (pod) {
      const grace = pod.spec?.terminationGracePeriodSeconds ?? this.#graceSeconds;
      await this.#deleteAndWait(watch, pod, grace);
      this.#log.log("info", "ZeroFS pod stopped", { volumeId, pod: name });
    }
    await removeSockets(stateDirFiles(stateDir));
  }

  /** What the pod says, and a fresh handshake check through the host paths. */
  async status(volumeId: string, stateDir: string): Promise<InstanceStatus> {
    const name = zerofsPodName(volumeId, this.#nodeName);
    let pod: V1Pod;
    try {
      pod = await this.#kube.core.readNamespacedPod({ name, namespace: this.#namespace });
    } catch (e) {
      if (apiStatusCode(e) !== 404) {
        throw apiFailure(`read ZeroFS pod ${this.#namespace}/${name}`, e);
      }
      return {
        volumeId,
        running: false,
        ready: false,
        reason: `no ZeroFS pod ${this.#namespace}/${name}`,
      };
    }
    if (!isRunning(pod)) {
      return { ...this.#status(volumeId, pod, { ready: false }), running: false };
    }
    const { ninepSocket, nbdSocket } = stateDirFiles(stateDir);
    const check = await checkReady(
      { ninepSocket, nbdSocket, exportName: "" },
      { timeoutMs: STATUS_CHECK_TIMEOUT_MS },
    );
    return { ...this.#status(volumeId, pod, check), running: true };
  }

  #status(volumeId: string, pod: V1Pod, check: { ready: boolean; reason?: string }) {
    const status: InstanceStatus = {
      volumeId,
      running: true,
      ready: check.ready,
      podName: pod.metadata?.name,
      configHash: pod.metadata?.annotations?.[POD_ANNOTATION_CONFIG_HASH],
    };
    if (!check.ready) {
      status.reason = check.reason ??
        `ZeroFS pod ${this.#namespace}/${pod.metadata?.name} is ${describePod(pod)}`;
    }
    return status;
  }

  async #create(pod: V1Pod): Promise<V1Pod> {
    try {
      return await this.#kube.core.createNamespacedPod({ namespace: this.#namespace, body: pod });
    } catch (e) {
      throw apiFailure(`create ZeroFS pod ${this.#namespace}/${pod.metadata!.name}`, e);
    }
  }

  /** Pod started (watch), then handshakes while it keeps running; all within `timeoutMs`. */
  async #waitReady(
    spec: InstanceSpec,
    watch: PodWatch,
    uid: string,
    timeoutMs: number,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const ours = (p: V1Pod | undefined) => p?.metadata?.uid === uid;
    // Right after the create, the watch may not have delivered the pod yet.
    const seen = await watch.waitFor(ours, deadline - Date.now());
    const started = seen && await watch.waitFor(
      (p) => !ours(p) || isRunning(p!) || isFinished(p!) || Boolean(p!.metadata?.deletionTimestamp),
      deadline - Date.now(),
    );
    if (!started || !ours(watch.pod) || !isRunning(watch.pod!)) {
      const state = ours(watch.pod) ? describePod(watch.pod!) : "gone";
      throw this.#notReady(
        spec,
        started
          ? `ZeroFS pod is ${state}`
          : `ZeroFS pod did not start within ${timeoutMs} ms: ${state}`,
        watch.pod,
      );
    }
    try {
      await waitUntilReady(spec, {
        timeoutMs: Math.max(1, deadline - Date.now()),
        isAlive: () => Promise.resolve(ours(watch.pod) && isRunning(watch.pod!)),
        logTail: () => Promise.resolve(""),
      });
    } catch (e) {
      if (!(e instanceof ZeroFsNotReadyError)) throw e;
      const state = ours(watch.pod) ? describePod(watch.pod!) : "gone";
      throw this.#notReady(
        spec,
        `${e.message.replace(/\.? Check the .*$/, "")}; pod ${state}`,
        watch.pod,
      );
    }
  }

  #notReady(spec: InstanceSpec, what: string, pod: V1Pod | undefined): ZeroFsNotReadyError {
    const name = zerofsPodName(spec.volumeId, this.#nodeName);
    const tail = terminationMessage(pod);
    const hint = ` (its log: kubectl logs -n ${this.#namespace} ${name})`;
    return new ZeroFsNotReadyError(
      `Volume "${spec.volumeId}": ZeroFS pod ${this.#namespace}/${name} not ready: ${what}${hint}`,
      tail,
    );
  }

  /** Delete (unless already terminating) and wait until the pod with this uid is gone. */
  async #deleteAndWait(watch: PodWatch, pod: V1Pod, graceSeconds: number): Promise<void> {
    const { name, uid } = pod.metadata!;
    if (!pod.metadata?.deletionTimestamp) {
      try {
        await this.#kube.core.deleteNamespacedPod({
          name: name!,
          namespace: this.#namespace,
          gracePeriodSeconds: graceSeconds,
          body: { gracePeriodSeconds: graceSeconds, preconditions: { uid } },
        });
      } catch (e) {
        // 404: already gone; 409: the uid precondition failed, so this pod is gone too.
        const code = apiStatusCode(e);
        if (code !== 404 && code !== 409) {
          throw apiFailure(`delete ZeroFS pod ${this.#namespace}/${name}`, e);
        }
      }
    }
    const waitSeconds = (pod.metadata?.deletionGracePeriodSeconds ?? graceSeconds) +
      DELETE_MARGIN_SECONDS;
    const gone = await watch.waitFor((p) => p?.metadata?.uid !== uid, waitSeconds * 1_000);
    if (!gone) {
      throw new Error(
        `ZeroFS pod ${this.#namespace}/${name} is still there ${waitSeconds} s after its ` +
          `deletion (ZeroFS still flushing, or its node unreachable?); no new ZeroFS starts ` +
          `while it may still write. Check \`kubectl describe pod -n ${this.#namespace} ${name}\`.`,
      );
    }
  }
}

/** What every container of the pod gets; the ZeroFS and Envoy containers add their uid. */
const RESTRICTED_CONTAINER: V1SecurityContext = {
  privileged: false,
  allowPrivilegeEscalation: false,
  capabilities: { drop: ["ALL"] },
  readOnlyRootFilesystem: true,
};

/**
 * The original driver's sidecar: image `envoyImage`, the ConfigMap
 * `envoyConfigMapRef` read-only at /etc/envoy, no command or args (the image
 * runs `envoy -c /etc/envoy/envoy.yaml`), no ports (ZeroFS reaches it on the
 * pod's loopback).
 */
function envoySidecar(s: VolumeSettings): { container: V1Container; volume: V1Volume } {
  return {
    container: {
      name: ENVOY_CONTAINER,
      image: s.envoyImage,
      restartPolicy: "Always",
      terminationMessagePolicy: "FallbackToLogsOnError",
      securityContext: {
        ...RESTRICTED_CONTAINER,
        runAsUser: ENVOY_UID,
        runAsGroup: ENVOY_UID,
        runAsNonRoot: true,
      },
      volumeMounts: [{ name: "envoy-config", mountPath: ENVOY_CONFIG_DIR, readOnly: true }],
    },
    volume: { name: "envoy-config", configMap: { name: s.envoyConfigMapRef } },
  };
}

/** Same pod spec (hash), not going away, not finished. */
function reusable(existing: V1Pod, desired: V1Pod): boolean {
  const hash = (p: V1Pod) => p.metadata?.annotations?.[POD_ANNOTATION_POD_HASH];
  return hash(existing) === hash(desired) && !existing.metadata?.deletionTimestamp &&
    !isFinished(existing);
}

function isFinished(pod: V1Pod): boolean {
  return pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed";
}

/** Phase Running, the ZeroFS container running, and no deletion under way. */
function isRunning(pod: V1Pod): boolean {
  const container = pod.status?.containerStatuses?.find((c) => c.name === POD_CONTAINER);
  return pod.status?.phase === "Running" && Boolean(container?.state?.running) &&
    !pod.metadata?.deletionTimestamp;
}

/** One line on where a pod stands: phase, reasons, the container's state. */
export function describePod(pod: V1Pod): string {
  const parts = [pod.status?.phase ?? "without status"];
  if (pod.metadata?.deletionTimestamp) parts.push("terminating");
  if (pod.status?.reason) parts.push(`reason ${pod.status.reason}`);
  if (pod.status?.message) parts.push(pod.status.message);
  const container = pod.status?.containerStatuses?.find((c) => c.name === POD_CONTAINER);
  parts.push(...describeContainer("container", container));
  // ZeroFS starts only once the sidecar runs: a crashing Envoy is why it waits.
  const envoy = pod.status?.initContainerStatuses?.find((c) => c.name === ENVOY_CONTAINER);
  parts.push(...describeContainer("envoy sidecar", envoy));
  return parts.join(", ");
}

function describeContainer(what: string, status: V1ContainerStatus | undefined): string[] {
  const waiting = status?.state?.waiting;
  const terminated = status?.state?.terminated;
  const parts: string[] = [];
  if (waiting) {
    parts.push(
      `${what} waiting: ${waiting.reason ?? "?"}${waiting.message ? ` (${waiting.message})` : ""}`,
    );
  }
  if (terminated) {
    parts.push(
      `${what} exited with code ${terminated.exitCode}${
        terminated.reason ? ` (${terminated.reason})` : ""
      }`,
    );
  }
  return parts;
}

/** The last log lines the kubelet kept (FallbackToLogsOnError) when the container failed. */
function terminationMessage(pod: V1Pod | undefined): string {
  const container = pod?.status?.containerStatuses?.find((c) => c.name === POD_CONTAINER);
  return (container?.state?.terminated?.message ?? "").trimEnd();
}

function resourcesOf(s: VolumeSettings): V1ResourceRequirements | undefined {
  const pick = (cpu?: string, memory?: string) => {
    const out: Record<string, string> = {};
    if (cpu) out.cpu = cpu;
    if (memory) out.memory = memory;
    return Object.keys(out).length > 0 ? out : undefined;
  };
  const requests = pick(s.cpuRequest, s.memoryRequest);
  const limits = pick(s.cpuLimit, s.memoryLimit);
  if (!requests && !limits) return undefined;
  return { ...(requests ? { requests } : {}), ...(limits ? { limits } : {}) };
}

function shortHash(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, 8);
}

/** A node name as a label value (≤ 63 chars), else its hash. */
function labelValue(text: string): string {
  return /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/.test(text) ? text : shortHash(text);
}

function apiFailure(what: string, e: unknown): Error {
  return new Error(`Cannot ${what}: ${apiErrorMessage(e)}`);
}
