import { GUEST_DENO_DIR } from "./initramfs.ts";

/**
 * The guest's stage-2 script: runs as PID 1 (bash) after `/init` has
 * switch_rooted into the host root and set the guest up. It runs the caller's
 * script and leaves the results in the run directory for the host.
 *
 * @module
 */

/** Files stage 2 writes into the run directory. */
export const RUN_FILES = {
  /** The caller's script, written by the host. */
  script: "script.sh",
  /** Appears when the caller's script is about to start (boot is over). */
  started: "started",
  /** Everything the caller's script wrote to stdout and stderr. */
  output: "output",
  /** The caller's script's exit code, written last; read by the host once qemu has exited. */
  exitCode: "exit-code",
} as const;

/** Inputs of {@linkcode renderStage2}. */
export interface Stage2Options {
  /** Host path of the run directory (the guest sees the same path). */
  runDir: string;
  /** Working directory of the caller's script. */
  cwd: string;
}

/**
 * Render stage 2. Quoting: paths are single-quoted; they come from the
 * harness, not from test input.
 */
export function renderStage2(options: Stage2Options): string {
  const q = shellQuote;
  const run = (name: string) => q(`${options.runDir}/${name}`);
  return `set -u
export HOME=/root LANG=C.UTF-8 TERM=dumb
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
poweroff_now() { sync; echo o > /proc/sysrq-trigger; sleep 60; }
fail() { echo "zvm-stage2: cannot start the test script: $*" > /dev/console; poweroff_now; }

export DENO_DIR=${GUEST_DENO_DIR} DENO_NO_UPDATE_CHECK=1 NO_COLOR=1
cd ${q(options.cwd)} || fail "cd ${options.cwd}"
read -r uptime_s _ < /proc/uptime
echo "$uptime_s" > ${run(RUN_FILES.started)}
sync
bash ${run(RUN_FILES.script)} < /dev/null 2>&1 | tee ${run(RUN_FILES.output)} > /dev/console
code=\${PIPESTATUS[0]}
sync
# The host reads this only after qemu has exited, so a plain write is atomic enough.
echo "$code" > ${run(RUN_FILES.exitCode)}
poweroff_now
`;
}

/** Quote one word for bash. */
export function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}
