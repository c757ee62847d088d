/**
 * Every verb's usage text.
 *
 * @module
 */

import { DEFAULT_KUBELET_DIR } from "../node/mod.ts";
import { DEFAULT_STATE_DIR } from "./flags.ts";

const NODE_SHARED =
  `  --state-dir     state root                                  (default ${DEFAULT_STATE_DIR})
  --kubelet-dir   kubelet root: staging and target paths must (default ${DEFAULT_KUBELET_DIR})
                  lie below it, with no symlink there
  --attach-mode   kernel|userspace|auto                       (default auto)
  --process-keeper-socket  userspace attach: start nbdfuse through the
                  process keeper at this socket, so it outlives this
                  container (default: start it directly)
  --runner        process|pod                                 (default process)
  --zerofs-bin    ZeroFS binary (process runner)              (default zerofs)
  --settings-file driver settings (TOML: top-level defaults, [configMaps.<name>])
  --kubeconfig    kubeconfig (pod runner; default: in-cluster)
  --namespace     driver namespace (pod runner)               (default zerofs)
  --node-id       node name as Kubernetes knows it            (default: hostname)`;

const LOGGING = `  --log-level     debug|info|warn|error                       (default info)
  --log-format    json|text                                   (default json)`;

/** Usage text per verb (`main` for the program). */
export const USAGE: Record<string, string> = {
  main: `Usage: zerofs-csi <verb> [flags]

Verbs:
  controller   serve the CSI Identity and Controller services
  node         serve the CSI Identity and Node services
  status       show this node's volumes (table, or --json)
  attach       stage a volume by hand, as NodeStageVolume does (recovery without Kubernetes)
  detach       unstage a volume by hand, as NodeUnstageVolume does
  doctor       check this node's prerequisites and say what to fix
  process-keeper  keep the userspace attach's nbdfuse processes alive across agent restarts
  version      print the driver version

Run "zerofs-csi <verb> --help" for a verb's flags.`,
  controller: `Usage: zerofs-csi controller --endpoint unix:///path/csi.sock [flags]

  --endpoint             CSI socket (unix:///abs/path or /abs/path)   (required)
  --state-dir            controller state directory           (default ${DEFAULT_STATE_DIR})
  --settings-file        driver settings (TOML: top-level defaults, [configMaps.<name>])
  --default-config-map   ConfigMap locating volumes without a record (original driver's)
  --volume-records       local|object-store|auto: where volume records live   (default auto:
                         object-store when the default storageURL is s3://, else local)
  --delete-timeout-ms    bound on one object-store request in DeleteVolume  (default 30000)
  --config-source        api|file|auto: where ConfigMaps and credential Secrets come from
                         (default auto: api in a pod or with --kubeconfig, else file)
  --kubeconfig           kubeconfig file for the API (default: in-cluster ServiceAccount)
  --namespace            driver namespace of ConfigMaps and Secrets  (default zerofs)
  --metrics-address      serve Prometheus metrics at host:port/metrics (default: off)
  --node-registry        directory the node agents register in (their --node-registry);
                         ControllerPublishVolume to a node without a record is NOT_FOUND
                         (default: CSINode objects with the API, else no check)
${LOGGING}
  --help                 show this help

  Credentials: the CSI provisioner secrets, else the Secret named by
  awsCredentialsSecretName (api), else AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
  AWS_SESSION_TOKEN from the environment, else the AWS SDK's default chain.`,
  node: `Usage: zerofs-csi node --endpoint unix:///path/csi.sock [flags]

  --endpoint      CSI socket (unix:///abs/path or /abs/path)  (required)
${NODE_SHARED}
  --max-volumes   cap on volumes per node
  --metrics-address serve Prometheus metrics at host:port/metrics (default: off)
  --node-registry directory to register this node in at start (<dir>/<node id>.json),
                  read by a controller without the Kubernetes API
${LOGGING}
  --help          show this help`,
  "process-keeper": `Usage: zerofs-csi process-keeper --socket /path/keeper.sock [flags]

  Runs beside the node agent, in a container of its own, and starts nbdfuse
  when the agent (--process-keeper-socket) asks, so nbdfuse belongs to this
  container and survives restarts of the agent's. Starts nothing else.

  --socket        where to listen (0600)                      (required)
  --state-dir     the agent's state root: nbdfuse logs only   (default ${DEFAULT_STATE_DIR})
                  below it
${LOGGING}
  --help          show this help`,
  status: `Usage: zerofs-csi status [--json] [flags]

  Lists every volume this node has staged: state, ZeroFS pid or pod and
  readiness, device and size, staging mount, published targets, condition.

  --json          print JSON instead of a table
${NODE_SHARED}`,
  attach: `Usage: zerofs-csi attach --volume-id ID --staging-path DIR [flags]

  Runs the same steps as NodeStageVolume (start ZeroFS, device file, attach,
  format once, mount) for a volume given by flags, to recover a node without
  Kubernetes. Secrets come from the environment (ZEROFS_ENCRYPTION_PASSWORD,
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).

  --volume-id     the volume (PV name)                        (required)
  --staging-path  where to mount it (or, with --block, only attach); below
                  --kubelet-dir                               (required)
  --fs-type       ext4|xfs|btrfs                              (default ext4)
  --block         attach only, no filesystem
  --read-only     stage a ZeroFS reader, read-only
  --size          capacity in bytes for a new volume          (default 1073741824)
  --param         StorageClass-style parameters, k=v[,k=v…] (e.g. configMapName=zerofs)
${NODE_SHARED}
${LOGGING}`,
  detach: `Usage: zerofs-csi detach --volume-id ID [flags]

  Runs the same strict order as NodeUnstageVolume: unmount → disconnect the
  device → stop ZeroFS (it flushes; up to 120 s) → forget the volume.

  --volume-id     the volume (PV name)                        (required)
${NODE_SHARED}
${LOGGING}`,
  doctor: `Usage: zerofs-csi doctor [--state-dir DIR] [--attach-mode kernel|userspace|auto]
                         [--kubeconfig FILE] [--namespace NS]

  Checks the node: the nbd module and nbds_max, the tools and their versions,
  kernel filesystems, socket-path length, state-dir permissions. Exit 1 when
  something the chosen attach mode needs is missing.

  With the Kubernetes API (in a pod, or --kubeconfig), also lists what the
  original Go driver left in namespace NS (default zerofs): zerofs-volume-<id>
  pods and zerofs-config-<id> Secrets (names only), with what to do.`,
  version: `Usage: zerofs-csi version`,
};

/** Print a verb's usage to stdout; exit code 0. */
export function printUsage(verb: string): number {
  console.log(USAGE[verb] ?? USAGE.main);
  return 0;
}
