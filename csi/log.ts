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

/** How log lines look: JSON objects (default) or `key=value` text for humans. */
export type LogFormat = "json" | "text";

/** Parse `json|text`; anything else is an error naming the value. */
export function parseLogFormat(value: string): LogFormat {
  if (value === "json" || value === "text") return value;
  throw new Error(`unknown log format "${value}"; use json or text`);
}

/** A logger writing one line per entry through `write` (default: stderr). */
export function createLogger(
  level: LogLevel = "info",
  write: (line: string) => void = (line) => Deno.stderr.writeSync(new TextEncoder().encode(line)),
  format: LogFormat = "json",
): Logger {
  return {
    level,
    enabled: (l) => RANK[l] >= RANK[level],
    log(l, msg, fields = {}) {
      if (RANK[l] < RANK[level]) return;
      const time = new Date().toISOString();
      const line = format === "json"
        ? JSON.stringify({ time, level: l, msg, ...fields })
        : textLine(time, l, msg, fields);
      write(line + "\n");
    },
  };
}

function textLine(time: string, level: LogLevel, msg: string, fields: LogFields): string {
  const pairs = Object.entries(fields).map(([k, v]) => {
    const text = typeof v === "string" ? v : JSON.stringify(v);
    return `${k}=${/[\s"=]/.test(text) ? JSON.stringify(text) : text}`;
  });
  return [time, level.toUpperCase().padEnd(5), msg, ...pairs].join(" ");
}
