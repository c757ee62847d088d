/**
 * "Never format twice": the one place that decides whether mkfs may run.
 *
 * mkfs runs only when the volume record says "not formatted" (or there is no
 * record and the disk is new), `blkid` positively found no signature, and the
 * first megabyte reads as zeros. Everything else mounts what is there or
 * refuses with a reason.
 *
 * @module
 */

import type { FsType, Signature } from "../../blockdev/mod.ts";
import type { VolumeRecord } from "../../zerofs/mod.ts";
import { Code, CsiError } from "../errors.ts";

/** mkfs was refused to protect data: FAILED_PRECONDITION, with its own Event reason. */
export class FormatRefusedError extends CsiError {
  constructor(message: string) {
    super(Code.FAILED_PRECONDITION, message);
  }
}

/** What the stage should do with the device. */
export type FormatDecision =
  | { action: "format" }
  | { action: "mount"; fsType: string; writeRecord: boolean }
  | { action: "refuse"; reason: string };

/** Everything the decision rests on, gathered before it is made. */
export interface FormatFacts {
  requestedFsType: FsType;
  /** `/.zerofs-csi.json`; null when absent (a volume of the original Go driver). */
  record: VolumeRecord | null;
  signature: Signature;
  /** Reads the first megabyte; called only when formatting is otherwise allowed. */
  firstMegabyteIsZero: () => Promise<boolean>;
}

/** Decide between format, mount and refuse. Pure except for the zero check. */
export async function decideFormat(facts: FormatFacts): Promise<FormatDecision> {
  const { record, signature, requestedFsType } = facts;
  if (record?.fsType === "block") {
    return refuse(
      "the volume was created for raw block access; staging it with a filesystem would " +
        "overwrite its data. Use a PVC with volumeMode: Block",
    );
  }
  if (signature.kind === "filesystem") {
    if (signature.fsType !== requestedFsType) {
      return refuse(
        `the device holds a ${signature.fsType} filesystem but ${requestedFsType} was requested; ` +
          `set the StorageClass fsType to ${signature.fsType}`,
      );
    }
    return { action: "mount", fsType: signature.fsType, writeRecord: !record?.formatted };
  }
  if (signature.kind === "other") {
    return refuse(
      `the device holds "${signature.type}" data, not a filesystem; refusing to format`,
    );
  }
  if (record?.formatted) {
    return refuse(
      `the volume record says it was formatted as ${record.fsType}, but blkid finds no ` +
        `filesystem signature; refusing to format over possibly damaged data — ` +
        `inspect the volume with "zerofs-csi attach" first`,
    );
  }
  if (!(await facts.firstMegabyteIsZero())) {
    return refuse(
      record
        ? "the device has no filesystem signature but its first megabyte is not empty; " +
          "refusing to format"
        : "the volume has no zerofs-csi record and no filesystem signature, but its first " +
          "megabyte is not empty (data of an unknown kind); refusing to format",
    );
  }
  return { action: "format" };
}

function refuse(reason: string): FormatDecision {
  return { action: "refuse", reason };
}
