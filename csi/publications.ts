/**
 * The controller's per-node publication records: which nodes a volume is
 * published to and how, kept in a volume entry's `publishedNodes` (the list
 * older controllers read) and `publications` (how, by node ID).
 *
 * @module
 */

import type { ControllerVolumeEntry, Publication } from "./registry.ts";
import type { Capability } from "./validate.ts";

/** The publication a ControllerPublishVolume request asks for. */
export function publicationOf(cap: Capability, readonly: boolean): Publication {
  return {
    readonly,
    accessType: cap.accessType,
    accessMode: cap.accessMode,
    ...(cap.fsType ? { fsType: cap.fsType } : {}),
    mountFlags: [...cap.mountFlags],
  };
}

/**
 * How `wanted` differs from the recorded publication on the same node, as a
 * phrase for the ALREADY_EXISTS message; null when it is the same
 * publication (an idempotent retry). A node recorded before publications
 * were (a bare entry in publishedNodes) accepts any publication.
 */
export function publicationConflict(
  recorded: Publication | undefined,
  wanted: Publication,
): string | null {
  if (!recorded) return null;
  const differences: string[] = [];
  if (recorded.readonly !== wanted.readonly) {
    differences.push(`readonly ${recorded.readonly}`);
  }
  if (recorded.accessType !== wanted.accessType) {
    differences.push(`${recorded.accessType} access`);
  }
  if (recorded.accessMode !== wanted.accessMode) {
    differences.push(`access mode ${recorded.accessMode}`);
  }
  if ((recorded.fsType ?? "") !== (wanted.fsType ?? "")) {
    differences.push(`fs type "${recorded.fsType ?? ""}"`);
  }
  if (recorded.mountFlags.join(",") !== wanted.mountFlags.join(",")) {
    // Never listed: the CSI spec says mount flags may carry sensitive values.
    differences.push("different mount flags (not shown: they may be sensitive)");
  }
  return differences.length > 0 ? differences.join(", ") : null;
}

/** The nodes a volume is published to. */
export function publishedNodesOf(entry: ControllerVolumeEntry): string[] {
  return entry.publishedNodes ?? [];
}

/** `entry` with `nodeId` published as `publication` (replacing a recorded one). */
export function withPublication(
  entry: ControllerVolumeEntry,
  nodeId: string,
  publication: Publication,
): ControllerVolumeEntry {
  const nodes = publishedNodesOf(entry);
  return {
    ...entry,
    publishedNodes: nodes.includes(nodeId) ? nodes : [...nodes, nodeId],
    publications: { ...entry.publications, [nodeId]: publication },
  };
}

/** `entry` without `nodeId`'s publication; `""` removes every node's. */
export function withoutPublication(
  entry: ControllerVolumeEntry,
  nodeId: string,
): ControllerVolumeEntry {
  const left = nodeId === "" ? [] : publishedNodesOf(entry).filter((n) => n !== nodeId);
  const publications = Object.fromEntries(
    Object.entries(entry.publications ?? {}).filter(([n]) => left.includes(n)),
  );
  return { ...entry, publishedNodes: left, publications };
}
