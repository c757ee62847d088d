/**
 * `zerofs-csi process-keeper`: the userspace attach's keeper of nbdfuse, run
 * in a container of the node pod beside the agent, so that an agent restart
 * does not take the volumes' nbdfuse processes down (blockdev/process_keeper.ts).
 *
 * @module
 */

import { serveProcessKeeper } from "../../blockdev/mod.ts";
import { DEFAULT_STATE_DIR, LOG_FLAGS, loggerFrom, parseFlags, requireFlag } from "./flags.ts";
import { printUsage } from "./usage.ts";

/** The only helper the userspace attacher starts. */
const KEPT_TOOLS = ["nbdfuse"];

/** Serve until SIGTERM/SIGINT; the helpers it started keep running after it stops. */
export async function runProcessKeeper(argv: string[]): Promise<number> {
  const flags = parseFlags("process-keeper", argv, {
    socket: { type: "string" },
    "state-dir": { type: "string", default: DEFAULT_STATE_DIR },
    ...LOG_FLAGS,
  });
  if (flags.help) return printUsage("process-keeper");
  const socketPath = requireFlag("process-keeper", flags, "socket");
  const log = loggerFrom("process-keeper", flags);
  const keeper = await serveProcessKeeper({
    socketPath,
    tools: KEPT_TOOLS,
    logRoot: String(flags["state-dir"]),
    onEvent: (e) =>
      e.kind === "started"
        ? log.log("info", "helper started", { tool: e.tool, pid: e.pid })
        : log.log("warn", "request refused", { reason: e.reason }),
  });
  log.log("info", "serving", { socket: socketPath, tools: KEPT_TOOLS });
  const signal = await new Promise<Deno.Signal>((resolve) => {
    for (const s of ["SIGTERM", "SIGINT"] as const) Deno.addSignalListener(s, () => resolve(s));
  });
  log.log("info", "shutting down", { signal });
  await keeper.close();
  return 0;
}
