/**
 * One finding of `doctor`, shared by the node checks (`doctor.ts`) and the
 * original driver's leftovers (`doctor_leftovers.ts`).
 *
 * @module
 */

/** How much a failed check matters: only `error` makes the node unusable. */
export type CheckSeverity = "error" | "warning" | "info";

/** One finding. `severity` is what a failure of this check means on this node. */
export interface DoctorCheck {
  name: string;
  ok: boolean;
  severity: CheckSeverity;
  detail: string;
  /** What to do when the check failed. */
  fix?: string;
}
