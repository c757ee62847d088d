/**
 * How one raw settings string becomes a typed value: each parser takes the
 * string and where it was read (for the message) and returns the value or
 * throws a {@linkcode SettingsError} that names the place, echoes the value
 * (shortened) and says what is expected. The table of which key uses which
 * parser is in `settings.ts`.
 *
 * @module
 */

import { SettingsError } from "./types.ts";

/** Reads one raw string read at `where` (e.g. `StorageClass parameter "x"`), or throws. */
export type Parser<T> = (raw: string, where: string) => T;

const MAX_ECHO_CHARS = 80;

function echo(raw: string): string {
  const short = raw.length > MAX_ECHO_CHARS ? raw.slice(0, MAX_ECHO_CHARS) + "…" : raw;
  return JSON.stringify(short);
}

/** What every invalid-value message ends with: where to fix it. */
export const SETTINGS_FIX_HINT = "fix the StorageClass parameters or the ConfigMap";

function invalid(where: string, raw: string, expected: string): SettingsError {
  return new SettingsError(`invalid ${where} = ${echo(raw)}: ${expected}; ${SETTINGS_FIX_HINT}`);
}

/** A parser that accepts exactly one of `values`. */
export function oneOf<const T extends string>(values: readonly T[]): Parser<T> {
  const quoted = values.map((v) => JSON.stringify(v));
  const expected = `must be ${quoted.slice(0, -1).join(", ")} or ${quoted.at(-1)}`;
  return (raw, where) => {
    if ((values as readonly string[]).includes(raw)) return raw as T;
    throw invalid(where, raw, expected);
  };
}

/** Exactly "true" or "false": what CreateVolume compares against (ours, not the original's). */
export const parseStrictBoolean: Parser<boolean> = (raw, where) =>
  oneOf(["true", "false"])(raw, where) === "true";

/**
 * The spellings ZeroFS's object store accepts for a boolean (object_store
 * 0.12 `impl Parse for bool`, any case). The original driver copied
 * `awsAllowHTTP` into ZeroFS's `allow_http` as is, so its ConfigMaps may
 * use any of them.
 */
const TRUE_WORDS: ReadonlySet<string> = new Set(["1", "true", "on", "yes", "y"]);
const FALSE_WORDS: ReadonlySet<string> = new Set(["0", "false", "off", "no", "n"]);

/** A boolean in any spelling ZeroFS's object store accepts. */
export const parseBoolean: Parser<boolean> = (raw, where) => {
  const word = raw.toLowerCase();
  if (TRUE_WORDS.has(word)) return true;
  if (FALSE_WORDS.has(word)) return false;
  throw invalid(where, raw, `must be "true" or "false" (or 1/0, yes/no, on/off, y/n)`);
};

/**
 * `envoyEnabled` as the original driver read it (`strings.EqualFold(v, "true")`):
 * on only for "true" in any case; every other value, also "1" or "yes", means off,
 * so its ConfigMaps keep the meaning they had.
 */
export const parseEqualFoldTrue: Parser<boolean> = (raw) => raw.toLowerCase() === "true";

/** A positive decimal number such as "10" or "0.5". */
export const parsePositiveNumber: Parser<number> = (raw, where) => {
  const n = /^\s*\d+(\.\d+)?\s*$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isFinite(n) || n <= 0) {
    throw invalid(where, raw, `must be a positive number such as "10" or "0.5"`);
  }
  return n;
};

/** A whole number no smaller than `min`. */
export function integerAtLeast(min: number): Parser<number> {
  return (raw, where) => {
    const n = /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(n) || n < min) {
      throw invalid(where, raw, `must be a whole number ≥ ${min}`);
    }
    return n;
  };
}

/** Any text: a value the driver only passes on (names Kubernetes put there). */
export const parseText: Parser<string> = (raw) => raw;

/** A non-empty string without control characters. */
export const parseNonEmpty: Parser<string> = (raw, where) => {
  // deno-lint-ignore no-control-regex
  if (raw.trim() === "" || /[\u0000-\u001f\u007f]/.test(raw)) {
    throw invalid(where, raw, "must be a non-empty string without control characters");
  }
  return raw;
};

/** RFC 1123 subdomain: what Kubernetes accepts as a Secret or ConfigMap name. */
export const parseObjectName: Parser<string> = (raw, where) => {
  if (
    raw.length > 253 ||
    !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(raw)
  ) {
    throw invalid(
      where,
      raw,
      "must be a Kubernetes object name (lowercase letters, digits, '-' and '.')",
    );
  }
  return raw;
};

/** An absolute path without `..`. */
export const parseAbsolutePath: Parser<string> = (raw, where) => {
  if (!raw.startsWith("/") || raw.split("/").includes("..")) {
    throw invalid(where, raw, "must be an absolute path without '..'");
  }
  return parseNonEmpty(raw, where);
};

/** A Kubernetes resource quantity. */
export const parseQuantity: Parser<string> = (raw, where) => {
  if (!/^\d+(\.\d+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/.test(raw)) {
    throw invalid(where, raw, `must be a Kubernetes quantity such as "500m", "2" or "1Gi"`);
  }
  return raw;
};

/** ZeroFS's `[filesystem] compression`. */
export const parseCompression: Parser<string> = (raw, where) => {
  const zstd = /^zstd-(\d{1,2})$/.exec(raw);
  if (raw === "lz4" || (zstd && Number(zstd[1]) >= 1 && Number(zstd[1]) <= 22)) return raw;
  throw invalid(where, raw, `must be "lz4" or "zstd-1" … "zstd-22"`);
};

/** An object-store region name. */
export const parseRegion: Parser<string> = (raw, where) => {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(raw)) {
    throw invalid(where, raw, `must be a region name such as "us-east-1"`);
  }
  return raw;
};

/** A container image reference. */
export const parseImage: Parser<string> = (raw, where) => {
  if (!/^[A-Za-z0-9][A-Za-z0-9._\/:@-]*$/.test(raw)) {
    throw invalid(
      where,
      raw,
      `must be a container image reference such as "ghcr.io/barre/zerofs:0.16.2"`,
    );
  }
  return raw;
};

/** An http(s) endpoint URL without credentials; trailing slashes dropped. */
export const parseEndpoint: Parser<string> = (raw, where) => {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalid(
      where,
      raw,
      `must be a URL such as "https://s3.example.com" or "http://minio:9000"`,
    );
  }
  if (url.username || url.password) {
    // Never echo: the value itself carries credentials.
    throw new SettingsError(
      `invalid ${where}: the URL contains credentials; put them in the Secret named by awsCredentialsSecretName`,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw invalid(where, raw, "must start with http:// or https://");
  }
  return raw.replace(/\/+$/, "");
};

/**
 * Schemes a volume may use: `s3://` (AWS S3 and S3-compatible stores), and
 * `memory://` for tests. ZeroFS also speaks `gs://` and `azure://`, but this
 * driver hands it only `[aws]` credentials and can delete only s3:// objects,
 * so such a volume could neither authenticate nor ever be deleted.
 */
export const STORAGE_SCHEMES: readonly string[] = ["s3", "memory"];
const UNSUPPORTED_ZEROFS_SCHEMES: ReadonlySet<string> = new Set(["gs", "azure"]);

/** A storage URL `<scheme>://<bucket>/<prefix>`, normalised (no empty or trailing segments). */
export const parseStorageUrl: Parser<string> = (raw, where) => {
  const m = /^([a-z0-9]+):\/\/([^/?#]*)(\/[^?#]*)?$/.exec(raw);
  if (!m) {
    throw invalid(where, raw, `must look like "s3://bucket/prefix" (no query string or fragment)`);
  }
  const [, scheme, bucket, path = ""] = m;
  if (!STORAGE_SCHEMES.includes(scheme)) {
    const why = scheme === "file"
      ? "file:// lacks the conditional writes ZeroFS needs; "
      : UNSUPPORTED_ZEROFS_SCHEMES.has(scheme)
      ? `${scheme}:// is not supported: this driver passes ZeroFS only AWS credentials and ` +
        `deletes only s3:// objects; `
      : "";
    throw invalid(
      where,
      raw,
      `${why}use one of the supported schemes: s3://, memory:// (for tests)`,
    );
  }
  if (scheme !== "memory" && bucket === "") throw invalid(where, raw, "names no bucket");
  if (bucket.includes("@")) {
    throw new SettingsError(
      `invalid ${where}: the URL contains credentials; use the Secret named by awsCredentialsSecretName`,
    );
  }
  const segments = path.split("/").filter((s) => s !== "");
  if (segments.some((s) => s === "." || s === "..") || /\s/.test(raw)) {
    throw invalid(where, raw, "the prefix must not contain '.', '..' segments or whitespace");
  }
  return `${scheme}://${bucket}${segments.length ? "/" + segments.join("/") : ""}`;
};
