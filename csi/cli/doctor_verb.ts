/**
 * `zerofs-csi doctor`: check the node and print what to fix.
 *
 * @module
 */

import { formatDoctorReport, runDoctor } from "./doctor.ts";
import { DEFAULT_STATE_DIR, oneOf, parseFlags } from "./flags.ts";
import { printUsage } from "./usage.ts";

/** Run `doctor`; exit 1 when a check the chosen attach mode needs fails. */
export async function runDoctorVerb(argv: string[]): Promise<number> {
  const flags = parseFlags("doctor", argv, {
    "state-dir": { type: "string", default: DEFAULT_STATE_DIR },
    "attach-mode": { type: "string", default: "auto" },
  });
  if (flags.help) return printUsage("doctor");
  const report = await runDoctor({
    stateDir: String(flags["state-dir"]),
    attachMode: oneOf<"auto" | "kernel" | "userspace">(
      "doctor",
      "attach-mode",
      String(flags["attach-mode"]),
      ["auto", "kernel", "userspace"],
    ),
  });
  console.log(formatDoctorReport(report));
  return report.ok ? 0 : 1;
}
