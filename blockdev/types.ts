/**
 * The node's block layer as the Node service sees it.
 *
 * @module
 */

/** How an NBD export becomes a block device on this node. */
export type AttachMode = "kernel" | "userspace";

/** What to attach: one ZeroFS NBD export on a unix socket. */
export interface NbdTarget {
  volumeId: string;
  /** ZeroFS's NBD unix socket as the node agent reaches it. */
  socketPath: string;
  /** NBD export name (`disk`). */
  exportName: string;
  readOnly: boolean;
  /** The volume's state directory (userspace mode keeps its FUSE mount here). */
  workDir: string;
}

/**
 * A device connected to a target. Persisted in the volume's state record
 * *before* the connection is made, so a crash can always be cleaned up.
 */
export interface Attachment {
  mode: AttachMode;
  /** `/dev/nbd3` or `/dev/loop5`; empty until known (userspace: loop picked after FUSE). */
  device: string;
  /** Userspace mode: the nbdfuse mount directory and its helper pid. */
  fuseDir?: string;
  helperPid?: number;
}

/** Called with the intended attachment before any side effect; must persist it. */
export type RecordIntent = (attachment: Attachment) => Promise<void>;

/** One attach backend (kernel nbd-client, or nbdfuse + loop). */
export interface Attacher {
  readonly mode: AttachMode;
  /**
   * Connect `target` to a free device. Device choice, `record`, connect and
   * rollback happen under one node-wide lock. Throws {@linkcode NoFreeDeviceError}
   * when none is free; on any failure disconnects what it connected.
   */
  attach(target: NbdTarget, record: RecordIntent): Promise<Attachment>;
  /** Disconnect and verify the device is free. Idempotent: a free device is success. */
  detach(attachment: Attachment): Promise<void>;
  /** True when the device is still connected (kernel: pid/size in sysfs; userspace: loop backing file). */
  isConnected(attachment: Attachment): Promise<boolean>;
  /** How many volumes this node can attach at most (devices it really has). */
  capacity(): Promise<number>;
}

/** A filesystem the driver can create. */
export type FsType = "ext4" | "xfs" | "btrfs";

/** One line of /proc/self/mountinfo. */
export interface MountEntry {
  mountId: number;
  parentId: number;
  /** major:minor */
  devNumbers: string;
  root: string;
  mountPoint: string;
  options: string[];
  fsType: string;
  source: string;
  superOptions: string[];
}

/** No device is free on this node (→ RESOURCE_EXHAUSTED). */
export class NoFreeDeviceError extends Error {
  override readonly name = "NoFreeDeviceError";
}
