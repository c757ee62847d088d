/**
 * Flag parsing shared by every verb: strict `node:util` parseArgs, usage
 * errors (exit 2) and the logging flags.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { createLogger, type Logger, parseLogFormat, parseLogLevel } from "../log.ts";

/** Exit codes of the CLI. */
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** The default state root on a node. */
export const DEFAULT_STATE_DIR = "/var/lib/zerofs-csi";

/** Bad command line: printed with the verb's usage, exit 2. */
export class UsageError extends Error {
  constructor(message: string, readonly verb: string) {
    super(message);
  }
}

/** Parsed flag values. */
export type Flags = Record<string, string | boolean | undefined>;

/** A verb's flag definitions (`help` is added to all). */
export type FlagSpec = Record<string, { type: "string" | "boolean"; default?: string }>;

/** The flags every long-running or node verb shares for logging. */
export const LOG_FLAGS: FlagSpec = {
  "log-level": { type: "string", default: "info" },
  "log-format": { type: "string", default: "json" },
};

/** Parse `argv` strictly; unknown flags and positionals are usage errors. */
export function parseFlags(verb: string, argv: string[], options: FlagSpec): Flags {
  try {
    const { values } = parseArgs({
      args: argv,
      options: { ...options, help: { type: "boolean" } },
      strict: true,
      allowPositionals: false,
    });
    return values as Flags;
  } catch (e) {
    throw new UsageError((e as Error).message, verb);
  }
}

/** The flag's value when it is one of `allowed`, else a usage error naming it. */
export function oneOf<T extends string>(
  verb: string,
  flag: string,
  value: string,
  allowed: T[],
): T {
  if (!allowed.includes(value as T)) {
    throw new UsageError(`--${flag} must be one of ${allowed.join(", ")}, not "${value}"`, verb);
  }
  return value as T;
}

/** A required string flag. */
export function requireFlag(verb: string, flags: Flags, name: string): string {
  const v = flags[name];
  if (typeof v !== "string" || v === "") throw new UsageError(`--${name} is required`, verb);
  return v;
}

/** An optional string flag. */
export function optionalFlag(flags: Flags, name: string): string | undefined {
  const v = flags[name];
  return typeof v === "string" && v !== "" ? v : undefined;
}

/** The logger the verb's `--log-level` and `--log-format` ask for (stderr). */
export function loggerFrom(verb: string, flags: Flags): Logger {
  try {
    return createLogger(
      parseLogLevel(String(flags["log-level"] ?? "info")),
      undefined,
      parseLogFormat(String(flags["log-format"] ?? "json")),
    );
  } catch (e) {
    throw new UsageError((e as Error).message, verb);
  }
}
