/**
 * Failpoints: named places in the node's stage where a test can make the
 * agent die hard, to prove that a restarted agent finishes or undoes what the
 * dead one left half done. Inert unless `ZEROFS_CSI_FAILPOINTS` names them.
 *
 * @module
 */

import type { Logger } from "./log.ts";

/** The variable the node agent reads at start: a comma-separated list of failpoint names. */
export const FAILPOINTS_ENV = "ZEROFS_CSI_FAILPOINTS";

/** What a process hitting an armed failpoint exits with (no other path of the driver uses it). */
export const FAILPOINT_EXIT_CODE = 86;

/** Every failpoint, named after the stage step it follows. */
export const FAILPOINT_NAMES = [
  /** The device is attached (and recorded), nothing is formatted or mounted yet. */
  "stage.after-attach",
] as const;

/** One failpoint's name. */
export type FailpointName = typeof FAILPOINT_NAMES[number];

/**
 * Parse the variable's value: empty or unset arms nothing; a name that is not
 * a failpoint is an error naming the variable and the valid names.
 */
export function parseFailpoints(value: string | undefined): Set<FailpointName> {
  const names = (value ?? "").split(",").map((n) => n.trim()).filter((n) => n !== "");
  const known = new Set<string>(FAILPOINT_NAMES);
  const unknown = names.filter((n) => !known.has(n));
  if (unknown.length > 0) {
    throw new Error(
      `${FAILPOINTS_ENV} names unknown failpoint(s) ${unknown.map((n) => `"${n}"`).join(", ")}; ` +
        `valid names: ${FAILPOINT_NAMES.join(", ")} (or leave ${FAILPOINTS_ENV} unset)`,
    );
  }
  return new Set(names as FailpointName[]);
}

let armed: ReadonlySet<FailpointName> = new Set();
let armedLog: Logger | undefined;

/**
 * Arm the failpoints `ZEROFS_CSI_FAILPOINTS` names (once, at agent start);
 * throws on an unknown name so that a typo never passes as "not reached".
 */
export function armFailpointsFromEnv(log: Logger): ReadonlySet<FailpointName> {
  armed = parseFailpoints(Deno.env.get(FAILPOINTS_ENV));
  armedLog = log;
  if (armed.size > 0) log.log("warn", "failpoints armed", { failpoints: [...armed] });
  return armed;
}

/** At an armed failpoint: log one line and exit at once with {@linkcode FAILPOINT_EXIT_CODE}. */
export function failpoint(name: FailpointName): void {
  if (!armed.has(name)) return;
  armedLog?.log("error", "failpoint reached: exiting", {
    failpoint: name,
    exit_code: FAILPOINT_EXIT_CODE,
  });
  Deno.exit(FAILPOINT_EXIT_CODE);
}
