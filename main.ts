/**
 * zerofs-csi: the CSI driver's command line. The node-side verbs load their
 * modules only when they run. The controller's verb is imported statically:
 * its permission set has no read access to the source tree, which a dynamic
 * import of a local module needs under `deno run`.
 *
 * @module
 */

import { runController } from "./csi/cli/controller_verb.ts";
import { EXIT_FAILURE, EXIT_USAGE, parseFlags, UsageError } from "./csi/cli/flags.ts";
import { printUsage, USAGE } from "./csi/cli/usage.ts";
import { DRIVER_NAME, DRIVER_VERSION } from "./csi/version.ts";

type Verb = (argv: string[]) => Promise<number>;

const VERBS: Record<string, () => Promise<Verb>> = {
  controller: () => Promise.resolve(runController),
  node: async () => (await import("./csi/cli/node_verb.ts")).runNode,
  status: async () => (await import("./csi/cli/status_verb.ts")).runStatus,
  attach: async () => (await import("./csi/cli/attach_verb.ts")).runAttach,
  detach: async () => (await import("./csi/cli/attach_verb.ts")).runDetach,
  doctor: async () => (await import("./csi/cli/doctor_verb.ts")).runDoctorVerb,
  "process-keeper": async () => (await import("./csi/cli/process_keeper_verb.ts")).runProcessKeeper,
};

function version(argv: string[]): number {
  const flags = parseFlags("version", argv, {});
  if (flags.help) return printUsage("version");
  console.log(`${DRIVER_NAME} ${DRIVER_VERSION}`);
  return 0;
}

/** Run the CLI with `args` (without the program name); resolves with the exit code. */
export async function main(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  try {
    if (verb === "version") return version(rest);
    if (verb === "--help" || verb === "-h" || verb === "help") return printUsage("main");
    const load = VERBS[verb ?? ""];
    if (!load) throw new UsageError(verb ? `unknown verb "${verb}"` : "a verb is required", "main");
    return await (await load())(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`zerofs-csi: ${e.message}\n\n${USAGE[e.verb] ?? USAGE.main}`);
      return EXIT_USAGE;
    }
    console.error(`zerofs-csi ${verb}: ${e instanceof Error ? e.message : String(e)}`);
    // A person at the node (attach) sees ZeroFS's last log lines; CSI replies never carry them.
    const logTail = (e as { logTail?: unknown } | null)?.logTail;
    if (typeof logTail === "string" && logTail) console.error(`last ZeroFS log lines:\n${logTail}`);
    return EXIT_FAILURE;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
