/**
 * Failpoints: named places in the node's handlers where a test can make the
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

/**
 * Every failpoint, named `<handler>.after-<step>`: after each recorded intent
 * and after each effect of stage, unstage, publish, unpublish and expand.
 */
export const FAILPOINT_NAMES = [
  /** Phase `staging` recorded; nothing else done. */
  "stage.after-intent",
  /** ZeroFS running and ready; nothing attached. */
  "stage.after-zerofs",
  /** The device is attached (and recorded), nothing is formatted or mounted yet. */
  "stage.after-attach",
  /** mkfs ran on a new volume; the volume record does not say "formatted" yet. */
  "stage.after-format",
  /** Mounted at the staging path; phase `staged` not recorded yet. */
  "stage.after-mount",
  /** Phase `unstaging` recorded; nothing torn down. */
  "unstage.after-intent",
  /** The staging path is unmounted; the device still attached. */
  "unstage.after-unmount",
  /** The device is detached (and recorded); ZeroFS still runs. */
  "unstage.after-detach",
  /** ZeroFS stopped; the state record still there. */
  "unstage.after-stop",
  /** The target recorded as `publishing`; nothing mounted. */
  "publish.after-intent",
  /** The target bind-mounted; still recorded as `publishing`. */
  "publish.after-mount",
  /** The target recorded as `unpublishing`; still mounted. */
  "unpublish.after-intent",
  /** The target unmounted; the target path still there. */
  "unpublish.after-unmount",
  /** The target path removed; still recorded as `unpublishing`. */
  "unpublish.after-remove",
  /** Phase `expanding` recorded; nothing changed. */
  "expand.after-intent",
  /** The staging path unmounted for the expansion. */
  "expand.after-unmount",
  /** The device detached (and recorded). */
  "expand.after-detach",
  /** The device file grown through 9P; nothing attached. */
  "expand.after-grow-file",
  /** The device attached again at its new size; the filesystem not grown. */
  "expand.after-attach",
  /** The filesystem grown and mounted again; phase `staged` not recorded yet. */
  "expand.after-mount",
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
