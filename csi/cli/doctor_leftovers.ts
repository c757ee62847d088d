/**
 * What the original Go driver (jrcichra/zerofs-csi-driver) may have left in
 * its namespace (its `--namespace`, default `zerofs`), per volume:
 * - a Pod `zerofs-volume-<volume id>` running that volume's ZeroFS (labels
 *   `app=zerofs`, `type=volume`, `volume=<volume id>`);
 * - a Secret `zerofs-config-<volume id>` whose `config.toml` holds the
 *   encryption password and the S3 keys in plain text.
 * It deleted both at NodeUnstageVolume; they remain when that never ran (the
 * driver was removed while volumes were staged) or failed.
 *
 * `zerofs-csi doctor` lists them by name with what to do. Secret contents are
 * never read into the report: only `metadata.name` of each listed Secret is kept.
 *
 * @module
 */

import { apiErrorMessage, apiStatusCode, type KubeClient } from "../../kube/mod.ts";
import type { DoctorCheck } from "./doctor_check.ts";

/** The original driver's pod name prefix (`fmt.Sprintf("zerofs-volume-%s", volumeID)`). */
const ORIGINAL_POD_PREFIX = "zerofs-volume-";
/** The original driver's config Secret prefix (`fmt.Sprintf("zerofs-config-%s", volumeID)`). */
const ORIGINAL_SECRET_PREFIX = "zerofs-config-";

/** One pod of the original driver. */
export interface LeftoverPod {
  name: string;
  volumeId: string;
  nodeName?: string;
  phase?: string;
}

/** What was found; a list that could not be read carries the reason instead. */
export interface OriginalLeftovers {
  namespace: string;
  pods: LeftoverPod[] | { error: string };
  /** Secret names only. */
  secrets: string[] | { error: string };
}

/** List the original driver's pods and config Secrets in `namespace`. Never throws for API errors. */
export async function findOriginalLeftovers(
  kube: KubeClient,
  namespace: string,
): Promise<OriginalLeftovers> {
  const [pods, secrets] = await Promise.all([
    kube.core.listNamespacedPod({ namespace }).then(
      (list) =>
        list.items
          .filter((p) => p.metadata?.name?.startsWith(ORIGINAL_POD_PREFIX))
          .map((p): LeftoverPod => ({
            name: p.metadata!.name!,
            volumeId: p.metadata!.name!.slice(ORIGINAL_POD_PREFIX.length),
            nodeName: p.spec?.nodeName,
            phase: p.status?.phase,
          })),
      (e) => ({ error: listFailure("pods", namespace, e) }),
    ),
    kube.core.listNamespacedSecret({ namespace }).then(
      (list) =>
        list.items
          .map((s) => s.metadata?.name ?? "")
          .filter((name) => name.startsWith(ORIGINAL_SECRET_PREFIX)),
      (e) => ({ error: listFailure("secrets", namespace, e) }),
    ),
  ]);
  return { namespace, pods: sortByName(pods), secrets: sortNames(secrets) };
}

function listFailure(resource: string, namespace: string, e: unknown): string {
  const forbidden = apiStatusCode(e) === 403
    ? `; this identity may not list ${resource} there: run doctor with --kubeconfig of an ` +
      `account that may, or use \`kubectl get ${resource} -n ${namespace} -o name\``
    : "";
  return `cannot list ${resource} in namespace ${namespace}: ${apiErrorMessage(e)}${forbidden}`;
}

function sortByName<T extends { name: string }>(list: T[] | { error: string }) {
  return Array.isArray(list) ? [...list].sort((a, b) => a.name.localeCompare(b.name)) : list;
}

function sortNames(list: string[] | { error: string }) {
  return Array.isArray(list) ? [...list].sort() : list;
}

/** Doctor checks for the leftovers: warnings (they do not stop this node), with what to do. */
export function leftoverChecks(found: OriginalLeftovers): DoctorCheck[] {
  return [podCheck(found), secretCheck(found)];
}

function podCheck({ namespace, pods }: OriginalLeftovers): DoctorCheck {
  const name = "original driver pods";
  if (!Array.isArray(pods)) {
    return { name, ok: false, severity: "warning", detail: `could not check: ${pods.error}` };
  }
  if (pods.length === 0) {
    return {
      name,
      ok: true,
      severity: "warning",
      detail: `no zerofs-volume-* pod in ${namespace}`,
    };
  }
  const listed = pods.map((p) =>
    `${p.name} (volume ${p.volumeId}, node ${p.nodeName ?? "none"}, ${p.phase ?? "no status"})`
  );
  return {
    name,
    ok: false,
    severity: "warning",
    detail: `${pods.length} pod(s) of the original driver in ${namespace}: ${listed.join("; ")}`,
    fix: `Each is that volume's ZeroFS, its only writer while it runs. Never delete one while a ` +
      `workload mounts its volume (the mounted filesystem loses its disk and unflushed writes). ` +
      `First stop the workloads that use the volume and check that no VolumeAttachment names ` +
      `it (\`kubectl get volumeattachments | grep <volume>\`); then \`kubectl delete pod -n ` +
      `${namespace} <pod>\`. zerofs-csi starts its own ZeroFS at the next stage; two running ` +
      `at once would fence each other.`,
  };
}

function secretCheck({ namespace, secrets }: OriginalLeftovers): DoctorCheck {
  const name = "original driver Secrets";
  if (!Array.isArray(secrets)) {
    return { name, ok: false, severity: "warning", detail: `could not check: ${secrets.error}` };
  }
  if (secrets.length === 0) {
    return {
      name,
      ok: true,
      severity: "warning",
      detail: `no zerofs-config-* Secret in ${namespace}`,
    };
  }
  return {
    name,
    ok: false,
    severity: "warning",
    detail: `${secrets.length} Secret(s) of the original driver in ${namespace}, each holding a ` +
      `volume's encryption password and S3 keys in plain text: ${secrets.join(", ")}`,
    fix: `zerofs-csi never reads them. Delete each once its volume's zerofs-volume-<volume> pod ` +
      `is gone (\`kubectl delete secret -n ${namespace} <secret>\`); consider rotating the S3 ` +
      `keys if others could read Secrets in ${namespace}.`,
  };
}
