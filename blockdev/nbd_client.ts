/**
 * nbd-client: connects a kernel /dev/nbdK to an NBD export.
 *
 * @module
 */

import type { ToolOptions } from "./probe.ts";
import { runTool } from "./run.ts";

/** How {@linkcode connectKernelNbd} connects. */
export interface KernelNbdConnection {
  socketPath: string;
  exportName: string;
  readOnly: boolean;
  /** Connections the kernel opens to the server (`-C`). */
  connections: number;
  /** Kernel I/O timeout in seconds (`-t`). */
  timeoutSec: number;
}

/**
 * The argv of nbd-client. Netlink is the default
 * (no `-nonetlink`): the kernel then owns the connection and keeps it after
 * nbd-client exits, so an agent restart does not break I/O.
 */
function nbdClientConnectArgs(device: string, conn: KernelNbdConnection): string[] {
  return [
    "-unix",
    conn.socketPath,
    "-N",
    conn.exportName,
    "-b",
    "4096",
    "-C",
    String(conn.connections),
    "-t",
    String(conn.timeoutSec),
    ...(conn.readOnly ? ["-readonly"] : []),
    device,
  ];
}

/** Connect `device` (`/dev/nbdK`) to the export. */
export async function connectKernelNbd(
  device: string,
  conn: KernelNbdConnection & ToolOptions,
): Promise<void> {
  await (conn.runner ?? runTool)("nbd-client", nbdClientConnectArgs(device, conn), {
    timeoutMs: conn.timeoutMs,
  });
}

/** Disconnect `device` (`nbd-client -d`). */
export async function disconnectKernelNbd(device: string, opts: ToolOptions = {}): Promise<void> {
  await (opts.runner ?? runTool)("nbd-client", ["-d", device], { timeoutMs: opts.timeoutMs });
}
