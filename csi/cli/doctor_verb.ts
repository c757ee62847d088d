/**
 * `zerofs-csi doctor`: check the node and print what to fix.
 *
 * @module
 */

import { createKubeClient } from "../../kube/mod.ts";
import { formatDoctorReport, runDoctor } from "./doctor.ts";
import { DEFAULT_STATE_DIR, oneOf, optionalFlag, parseFlags } from "./flags.ts";
import { printUsage } from "./usage.ts";

/** Run `doctor`; exit 1 when a check the chosen attach mode needs fails. */
export async function runDoctorVerb(argv: string[]): Promise<number> {
  const flags = parseFlags("doctor", argv, {
    "state-dir": { type: "string", default: DEFAULT_STATE_DIR },
    "attach-mode": { type: "string", default: "auto" },
    kubeconfig: { type: "string" },
    namespace: { type: "string", default: "zerofs" },
  });
  if (flags.help) return printUsage("doctor");
  const namespace = String(flags.namespace);
  const report = await runDoctor({
    stateDir: String(flags["state-dir"]),
    attachMode: oneOf<"auto" | "kernel" | "userspace">(
      "doctor",
      "attach-mode",
      String(flags["attach-mode"]),
      ["auto", "kernel", "userspace"],
    ),
    kube: await kubeFor(optionalFlag(flags, "kubeconfig"), namespace),
  });
  console.log(formatDoctorReport(report));
  return report.ok ? 0 : 1;
}

/** The API from --kubeconfig or the pod's ServiceAccount; without either, why not. */
async function kubeFor(kubeconfig: string | undefined, namespace: string) {
  try {
    return { client: await createKubeClient({ kubeconfig }), namespace };
  } catch (e) {
    return { unavailable: e instanceof Error ? e.message : String(e) };
  }
}
