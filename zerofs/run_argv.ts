/**
 * The command line that runs ZeroFS on one volume, and reading it back from
 * a process's argv: the runners build it, the process runner and the orphan
 * scan recognise it.
 *
 * @module
 */

/** `zerofs` arguments that serve the volume configured in `configPath`. */
export function zerofsRunArgs(configPath: string, readOnly: boolean): string[] {
  return ["run", "-c", configPath, ...(readOnly ? ["--read-only"] : [])];
}

/**
 * The config a `zerofs run -c <config>` argv runs, or undefined for any other
 * argv. Only what follows the last `run` counts: a wrapper such as
 * `deno run --config deno.json main.ts run -c <config>` has options of its own.
 */
export function zerofsConfigOf(argv: readonly string[]): string | undefined {
  const run = argv.lastIndexOf("run");
  if (run < 0) return undefined;
  for (let i = run + 1; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "-c" || arg === "--config") return argv[i + 1];
    if (arg.startsWith("--config=")) return arg.slice("--config=".length);
  }
  return undefined;
}
