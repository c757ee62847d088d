/**
 * Userspace attach: nbdfuse exposes the export as a file, a loop device turns
 * the file into a block device. For kernels without the nbd module; slower
 * than the kernel path (every I/O crosses FUSE).
 *
 * Agent restarts: nbdfuse runs detached in its own session with its output in
 * a log file, so it outlives the agent and the loop device keeps working
 * (tests/integration/blockdev_test.ts kills the attaching process to prove it).
 *
 * @module
 */

import { join } from "node:path";
import { bindFreeLoopDevice, detachLoopDevice, listLoopDevices, loopBackingFile } from "./loop.ts";
import type { NodeLock } from "./lock.ts";
import { findMountByTarget } from "./mountinfo.ts";
import { startNbdfuse, unmountFuse } from "./nbdfuse.ts";
import { pollUntil } from "./poll.ts";
import { deviceSizeBytes } from "./probe.ts";
import { ensureProcessExited, isProcessAlive, processArgv } from "./process.ts";
import { type Runner, runTool, type spawnDetached } from "./run.ts";
import type { Attacher, Attachment, NbdTarget, RecordIntent } from "./types.ts";
import { NoFreeDeviceError } from "./types.ts";

/** Options for {@linkcode UserspaceAttacher}. */
export interface UserspaceAttacherOptions {
  lock: NodeLock;
  runner?: Runner;
  spawn?: typeof spawnDetached;
  /**
   * What {@linkcode UserspaceAttacher.capacity} reports. Loop devices are
   * created on demand, so the real bound is this setting. Default 64.
   */
  maxDevices?: number;
  /** How long nbdfuse may take to connect and show its file. Default 15 s. */
  readyTimeoutMs?: number;
  /** How long a detached device or an unmounted nbdfuse may take to go away. Default 10 s. */
  releaseTimeoutMs?: number;
  sysRoot?: string;
}

/** Name of the file nbdfuse shows inside the volume's FUSE directory. */
const FUSE_FILE_NAME = "nbd";

/** The FUSE directory and file for a volume's work directory. */
export function fusePaths(workDir: string): { fuseDir: string; fuseFile: string; logPath: string } {
  const fuseDir = join(workDir, "fuse");
  return {
    fuseDir,
    fuseFile: join(fuseDir, FUSE_FILE_NAME),
    logPath: join(workDir, "nbdfuse.log"),
  };
}

/** nbdfuse + loop device. */
export class UserspaceAttacher implements Attacher {
  readonly mode = "userspace" as const;
  readonly #opts: UserspaceAttacherOptions;
  readonly #runner: Runner;

  constructor(opts: UserspaceAttacherOptions) {
    this.#opts = opts;
    this.#runner = opts.runner ?? runTool;
  }

  /**
   * Start nbdfuse, wait for its file, bind a loop device to it. Records the
   * FUSE directory before starting nbdfuse, the pid right after, and the loop
   * device before binding it. On failure undoes everything it did.
   */
  async attach(target: NbdTarget, record: RecordIntent): Promise<Attachment> {
    const { fuseDir, fuseFile, logPath } = fusePaths(target.workDir);
    if (await findMountByTarget(fuseDir)) {
      throw new Error(
        `Cannot attach volume "${target.volumeId}": ${fuseDir} is already mounted ` +
          `(an earlier attach?). Detach the recorded attachment first.`,
      );
    }
    await Deno.mkdir(fuseDir, { recursive: true });
    const attachment: Attachment = { mode: "userspace", device: "", fuseDir };
    await record({ ...attachment });
    try {
      attachment.helperPid = await startNbdfuse({
        fuseFile,
        socketPath: target.socketPath,
        exportName: target.exportName,
        readOnly: target.readOnly,
        logPath,
        spawn: this.#opts.spawn,
      });
      await record({ ...attachment });
      const fileSizeBytes = await this.#waitForFuseFile(attachment.helperPid, fuseFile, logPath);
      await this.#opts.lock.run(() => this.#bindLoop(attachment, { target, record }));
      await this.#verifySize(attachment.device, fileSizeBytes);
      return attachment;
    } catch (e) {
      await this.detach(attachment).catch((undoError) => {
        throw new AggregateError(
          [e, undoError],
          `Attach of volume "${target.volumeId}" failed and so did its cleanup: ` +
            `${undoError instanceof Error ? undoError.message : undoError}. Detach it again.`,
        );
      });
      throw e;
    }
  }

  /**
   * Free the loop device(s) backed by our file (verified in sysfs), unmount
   * the FUSE directory, make sure nbdfuse has exited. Idempotent.
   */
  async detach(attachment: Attachment): Promise<void> {
    if (!attachment.fuseDir) return;
    const fuseFile = join(attachment.fuseDir, FUSE_FILE_NAME);
    await this.#freeLoopDevices(attachment.device, fuseFile);
    await unmountFuse(attachment.fuseDir, { runner: this.#runner });
    const pid = attachment.helperPid;
    if (pid !== undefined) {
      await ensureProcessExited(pid, {
        graceMs: this.#opts.releaseTimeoutMs ?? 10_000,
        isRunning: () => isOurHelper(pid, fuseFile),
      });
    }
  }

  /** The loop device is bound to our FUSE file and nbdfuse is alive. */
  async isConnected(attachment: Attachment): Promise<boolean> {
    if (!attachment.fuseDir || !attachment.device || attachment.helperPid === undefined) {
      return false;
    }
    const fuseFile = join(attachment.fuseDir, FUSE_FILE_NAME);
    const backing = await loopBackingFile(attachment.device, { sysRoot: this.#opts.sysRoot });
    return backing === fuseFile && await isOurHelper(attachment.helperPid, fuseFile);
  }

  /** The configured maximum (loop devices are created on demand). */
  capacity(): Promise<number> {
    return Promise.resolve(this.#opts.maxDevices ?? 64);
  }

  async #waitForFuseFile(pid: number, fuseFile: string, logPath: string): Promise<number> {
    const timeoutMs = this.#opts.readyTimeoutMs ?? 15_000;
    let helperExited = false;
    const size = await pollUntil(async () => {
      const stat = await Deno.stat(fuseFile).catch(() => undefined);
      if (stat && stat.size > 0) return stat.size;
      if (!(await isProcessAlive(pid))) {
        helperExited = true;
        return 0;
      }
      return undefined;
    }, { timeoutMs, initialIntervalMs: 2, maxIntervalMs: 10 });
    if (size !== undefined && !helperExited) return size;
    const why = helperExited ? "nbdfuse exited" : `its file did not appear within ${timeoutMs} ms`;
    throw new Error(
      `Cannot attach ${fuseFile}: ${why}. Is the NBD server on the volume's socket up and ` +
        `serving the export? nbdfuse log:\n${await logTail(logPath)}`,
    );
  }

  async #bindLoop(
    attachment: Attachment,
    ctx: { target: NbdTarget; record: RecordIntent },
  ): Promise<void> {
    const inUse = (await listLoopDevices({ runner: this.#runner })).length;
    const max = await this.capacity();
    if (inUse >= max) {
      throw new NoFreeDeviceError(
        `Cannot attach volume "${ctx.target.volumeId}": ${inUse} loop devices are in use and ` +
          `this node allows ${max}. Move workloads or raise the limit.`,
      );
    }
    // The intent recorded before this step (fuseDir) already identifies the
    // loop device: detach and recovery find it by its backing file.
    const fuseFile = join(attachment.fuseDir!, FUSE_FILE_NAME);
    attachment.device = await bindFreeLoopDevice(fuseFile, {
      inMountNamespaceOf: attachment.helperPid,
      runner: this.#runner,
      readOnly: ctx.target.readOnly,
    });
    await ctx.record({ ...attachment });
  }

  async #verifySize(device: string, expectedBytes: number): Promise<void> {
    const sizeBytes = await deviceSizeBytes(device, { runner: this.#runner });
    if (sizeBytes !== expectedBytes) {
      throw new Error(
        `Cannot attach: ${device} has ${sizeBytes} bytes but the NBD export has ` +
          `${expectedBytes}. Retry the attach.`,
      );
    }
  }

  async #freeLoopDevices(recorded: string, fuseFile: string): Promise<void> {
    const bound = (await listLoopDevices({ runner: this.#runner }))
      .filter((d) => d.backingFile === fuseFile)
      .map((d) => d.device);
    const sysRoot = this.#opts.sysRoot;
    if (recorded && (await loopBackingFile(recorded, { sysRoot })) === fuseFile) {
      bound.push(recorded);
    }
    for (const device of new Set(bound)) {
      await detachLoopDevice(device, { runner: this.#runner });
      const freed = await pollUntil(
        async () => (await loopBackingFile(device, { sysRoot })) === undefined ? true : undefined,
        { timeoutMs: this.#opts.releaseTimeoutMs ?? 10_000 },
      );
      if (!freed) {
        throw new Error(
          `Cannot detach ${device}: it is still bound to ${fuseFile} after losetup -d ` +
            `(still mounted or open?). Unmount it and retry; autoclear will free it on last close.`,
        );
      }
    }
  }
}

/** `pid` is alive and is the nbdfuse serving `fuseFile` (pids get reused). */
async function isOurHelper(pid: number, fuseFile: string): Promise<boolean> {
  if (!(await isProcessAlive(pid))) return false;
  const argv = await processArgv(pid);
  return argv?.[0]?.endsWith("nbdfuse") === true && argv.includes(fuseFile);
}

async function logTail(logPath: string): Promise<string> {
  try {
    return (await Deno.readTextFile(logPath)).trim().split("\n").slice(-10).join("\n");
  } catch {
    return "(no log)";
  }
}
