/**
 * Structured JSON log lines on stderr, one object per line.
 *
 * @module
 */

/** Log severity, lowest first. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** Fields of one log line besides `time`, `level` and `msg`. */
export type LogFields = Record<string, unknown>;

/** Where log lines go. */
export interface Logger {
  readonly level: LogLevel;
  log(level: LogLevel, msg: string, fields?: LogFields): void;
  enabled(level: LogLevel): boolean;
}

/** Parse `debug|info|warn|error`; anything else is an error naming the value. */
export function parseLogLevel(value: string): LogLevel {
  if (value in RANK) return value as LogLevel;
  throw new Error(`unknown log level "${value}"; use debug, info, warn or error`);
}

/** A logger writing JSON lines through `write` (default: stderr). */
export function createLogger(
  level: LogLevel = "info",
  write: (line: string) => void = (line) => Deno.stderr.writeSync(new TextEncoder().encode(line)),
): Logger {
  return {
    level,
    enabled: (l) => RANK[l] >= RANK[level],
    log(l, msg, fields = {}) {
      if (RANK[l] < RANK[level]) return;
      const line = JSON.stringify({ time: new Date().toISOString(), level: l, msg, ...fields });
      write(line + "\n");
    },
  };
}
