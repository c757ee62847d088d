/**
 * Kernel attach: `nbd-client` connects a /dev/nbdK device (netlink), the
 * kernel keeps the connection after nbd-client exits.
 *
 * Device state comes from sysfs: `/sys/block/nbdK/pid` exists while a device
 * is connected and `size` (in 512-byte sectors) is non-zero.
 *
 * @module
 */

import type { NodeLock } from "./lock.ts";
import { connectKernelNbd, disconnectKernelNbd } from "./nbd_client.ts";
import { pollUntil } from "./poll.ts";
import { type Runner, runTool } from "./run.ts";
import type { Attacher, Attachment, NbdTarget, RecordIntent } from "./types.ts";
import { NoFreeDeviceError } from "./types.ts";

/** Options for {@linkcode KernelAttacher}. */
export interface KernelAttacherOptions {
  lock: NodeLock;
  runner?: Runner;
  /** Root of sysfs (tests pass a fake tree). Default `/sys`. */
  sysRoot?: string;
  /** Where device nodes live. Default `/dev`. */
  devRoot?: string;
  /** `nbd-client -C`. Default 1. */
  connections?: number;
  /** `nbd-client -t`. Default 60. */
  timeoutSec?: number;
  /** How long a disconnected device may take to show as free. Default 10 s. */
  releaseTimeoutMs?: number;
}

/** Sysfs state of one nbd device. */
interface NbdDeviceState {
  name: string;
  connected: boolean;
  sizeBytes: number;
}

/** nbd-client + /dev/nbdK. */
export class KernelAttacher implements Attacher {
  readonly mode = "kernel" as const;
  readonly #opts: KernelAttacherOptions;
  readonly #runner: Runner;
  readonly #sysRoot: string;
  readonly #devRoot: string;

  constructor(opts: KernelAttacherOptions) {
    this.#opts = opts;
    this.#runner = opts.runner ?? runTool;
    this.#sysRoot = opts.sysRoot ?? "/sys";
    this.#devRoot = opts.devRoot ?? "/dev";
  }

  /**
   * Under the node lock: choose the lowest free nbd device, record it, connect,
   * verify its size. On failure disconnects it again.
   */
  async attach(target: NbdTarget, record: RecordIntent): Promise<Attachment> {
    return await this.#opts.lock.run(async () => {
      const name = await this.#lowestFreeDevice(target.volumeId);
      const attachment: Attachment = { mode: "kernel", device: `${this.#devRoot}/${name}` };
      await record({ ...attachment });
      try {
        await connectKernelNbd(attachment.device, {
          socketPath: target.socketPath,
          exportName: target.exportName,
          readOnly: target.readOnly,
          connections: this.#opts.connections ?? 1,
          timeoutSec: this.#opts.timeoutSec ?? 60,
          runner: this.#runner,
        });
        const state = await this.#deviceState(name);
        if (!state.connected || state.sizeBytes <= 0) {
          throw new Error(
            `Cannot attach volume "${target.volumeId}": nbd-client succeeded but ` +
              `${attachment.device} shows size ${state.sizeBytes} bytes. Check the NBD export.`,
          );
        }
        return attachment;
      } catch (e) {
        await this.detach(attachment).catch(() => {/* the original error matters more */});
        throw e;
      }
    });
  }

  /** `nbd-client -d` and wait until sysfs shows the device free. Idempotent. */
  async detach(attachment: Attachment): Promise<void> {
    if (!attachment.device) return;
    const name = deviceName(attachment.device);
    if (!(await this.#deviceState(name)).connected) return;
    await disconnectKernelNbd(attachment.device, { runner: this.#runner });
    const freed = await pollUntil(
      async () => (await this.#deviceState(name)).connected ? undefined : true,
      { timeoutMs: this.#opts.releaseTimeoutMs ?? 10_000 },
    );
    if (!freed) {
      throw new Error(
        `Cannot detach ${attachment.device}: still connected after nbd-client -d. ` +
          `Check for openers (mounts, processes) and retry.`,
      );
    }
  }

  /** True while sysfs shows a connection (pid present or non-zero size). */
  async isConnected(attachment: Attachment): Promise<boolean> {
    if (!attachment.device) return false;
    return (await this.#deviceState(deviceName(attachment.device))).connected;
  }

  /** Number of nbd devices the kernel created (module parameter `nbds_max`). */
  async capacity(): Promise<number> {
    return (await this.#nbdDeviceNames()).length;
  }

  async #lowestFreeDevice(volumeId: string): Promise<string> {
    const names = await this.#nbdDeviceNames();
    for (const name of names) {
      if (!(await this.#deviceState(name)).connected) return name;
    }
    if (names.length === 0) {
      throw new NoFreeDeviceError(
        `Cannot attach volume "${volumeId}": the kernel has no nbd devices. ` +
          `Load the module first ("modprobe nbd nbds_max=64") or use --attach-mode userspace.`,
      );
    }
    throw new NoFreeDeviceError(
      `Cannot attach volume "${volumeId}": all ${names.length} nbd devices are in use. ` +
        `Move workloads or load the nbd module with a larger nbds_max.`,
    );
  }

  async #nbdDeviceNames(): Promise<string[]> {
    const names: string[] = [];
    for await (const entry of Deno.readDir(`${this.#sysRoot}/block`)) {
      if (/^nbd\d+$/.test(entry.name)) names.push(entry.name);
    }
    return names.sort((a, b) => Number(a.slice(3)) - Number(b.slice(3)));
  }

  async #deviceState(name: string): Promise<NbdDeviceState> {
    const dir = `${this.#sysRoot}/block/${name}`;
    const hasPid = await Deno.stat(`${dir}/pid`).then(() => true, (e) => {
      if (e instanceof Deno.errors.NotFound) return false;
      throw e;
    });
    const sectors = Number((await Deno.readTextFile(`${dir}/size`)).trim());
    const sizeBytes = sectors * 512;
    return { name, connected: hasPid || sizeBytes > 0, sizeBytes };
  }
}

function deviceName(device: string): string {
  return device.slice(device.lastIndexOf("/") + 1);
}
