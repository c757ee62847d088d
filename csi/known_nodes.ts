/**
 * Which nodes exist, for ControllerPublishVolume (an unknown node is
 * NOT_FOUND, as the CSI spec asks). Three sources:
 *
 * - Kubernetes (the controller reads the API): a node exists when its
 *   CSINode object lists this driver, i.e. the node agent's registrar has
 *   registered it with the kubelet there.
 * - A node registry directory (standalone, no API): each node agent writes
 *   `<dir>/<node id>.json` when it starts ({@linkcode registerNode}).
 * - Neither: every node is accepted. In Kubernetes the attacher only
 *   publishes to nodes the scheduler picked, and a standalone user who gave
 *   no registry asked for no check; the controller says so once at start.
 *
 * @module
 */

import { join } from "node:path";
import { defineRecord, readRecordFile, writeRecordFile } from "../zerofs/mod.ts";
import { apiErrorMessage, apiStatusCode, type KubeClient } from "../kube/mod.ts";
import { unavailable } from "./errors.ts";
import { DRIVER_NAME } from "./version.ts";

/** Answers "does this node run our node agent?". */
export interface KnownNodes {
  /** Where the answer comes from, for the start-up log line. */
  readonly source: string;
  exists(nodeId: string): Promise<boolean>;
}

/** No source: every node exists. */
export const ANY_NODE: KnownNodes = {
  source: "none (every node_id is accepted)",
  exists: () => Promise.resolve(true),
};

/** What a node agent writes into the node registry: "this node runs `driver`". */
export interface NodeRegistration {
  nodeId: string;
  driver: string;
  registeredAt: string;
}

/** The stored form of a {@linkcode NodeRegistration} (schema 1). */
export const NODE_REGISTRATION = defineRecord<NodeRegistration>({
  kind: "node registration",
  schema: 1,
  remedy: "remove it and restart that node's agent",
  validate: (f) => ({
    nodeId: f.string("nodeId"),
    driver: f.string("driver"),
    registeredAt: f.string("registeredAt"),
  }),
});

/** Longest encoded node ID that still makes a file name (255 bytes with ".json"). */
const MAX_FILE_STEM_BYTES = 250;

/** The record's file name: the node ID percent-encoded (no "/"), or null when too long. */
function recordFileName(nodeId: string): string | null {
  const stem = encodeURIComponent(nodeId);
  return stem.length <= MAX_FILE_STEM_BYTES ? `${stem}.json` : null;
}

/** Node agent: announce `nodeId` in the registry directory (atomic write, 0600). */
export async function registerNode(dir: string, nodeId: string, now = new Date()): Promise<string> {
  const file = recordFileName(nodeId);
  if (!file) {
    throw new Error(
      `--node-id "${nodeId.slice(0, 40)}…" is too long for --node-registry (at most ` +
        `${MAX_FILE_STEM_BYTES} bytes once percent-encoded); use a shorter node ID`,
    );
  }
  await Deno.mkdir(dir, { recursive: true, mode: 0o755 });
  const path = join(dir, file);
  const registration = { nodeId, driver: DRIVER_NAME, registeredAt: now.toISOString() };
  await writeRecordFile(NODE_REGISTRATION, path, registration);
  return path;
}

/** Controller: nodes that registered in a node registry directory. */
export class FileKnownNodes implements KnownNodes {
  readonly source: string;
  constructor(readonly dir: string) {
    this.source = `node registry ${dir}`;
  }

  async exists(nodeId: string): Promise<boolean> {
    const file = recordFileName(nodeId);
    if (!file) return false;
    const path = join(this.dir, file);
    const registration = await readRecordFile(NODE_REGISTRATION, path);
    if (registration === null) return false;
    if (registration.nodeId !== nodeId) {
      throw NODE_REGISTRATION.corrupt(
        path,
        `registers node ${JSON.stringify(registration.nodeId)}, not ${JSON.stringify(nodeId)}`,
      );
    }
    return registration.driver === DRIVER_NAME;
  }
}

/** Controller in a cluster: a node exists when its CSINode lists this driver. */
export class KubeKnownNodes implements KnownNodes {
  readonly source = "Kubernetes CSINode objects";
  readonly #storage: ReturnType<typeof storageApi>;

  constructor(kube: KubeClient) {
    this.#storage = storageApi(kube);
  }

  async exists(nodeId: string): Promise<boolean> {
    try {
      const csiNode = await this.#storage.readCSINode({ name: nodeId });
      return (csiNode.spec?.drivers ?? []).some((d) => d.name === DRIVER_NAME);
    } catch (e) {
      if (apiStatusCode(e) === 404) return false;
      throw unavailable(
        `cannot read CSINode "${nodeId}" to check that the node exists: ${apiErrorMessage(e)}; ` +
          `the controller needs "get" on storage.k8s.io csinodes (manifests/base)`,
      );
    }
  }
}

function storageApi(kube: KubeClient) {
  return kube.config.makeApiClient(kube.sdk.StorageV1Api);
}
