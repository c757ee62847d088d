/**
 * Secret redaction for anything a request may carry into a log line.
 *
 * @module
 */

/** Replacement for a secret value. */
export const REDACTED = "[REDACTED]";

/** Field or map keys whose values are never logged. */
const SECRET_KEY = /password|secret|token|key/i;
/** Map fields that hold nothing but secrets (CSI `secrets`). */
const SECRET_MAPS: ReadonlySet<string> = new Set(["secrets"]);
/** Mount flags may carry credentials (spec: "MAY contain sensitive information"). */
const SENSITIVE_LISTS: ReadonlySet<string> = new Set(["mount_flags"]);

/**
 * Deep copy of `value` with secrets replaced: the whole `secrets` map, mount
 * flags, and any field/map key containing password, secret, token or key.
 */
export function redact(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redact);
  if (value === null || typeof value !== "object") return value;
  if (value instanceof Uint8Array) return `<${value.length} bytes>`;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (SECRET_MAPS.has(k)) out[k] = redactMap(v);
    else if (SENSITIVE_LISTS.has(k) && Array.isArray(v)) out[k] = v.map(() => REDACTED);
    else if (SECRET_KEY.test(k)) out[k] = REDACTED;
    else out[k] = redact(v);
  }
  return out;
}

function redactMap(v: unknown): unknown {
  if (v === null || typeof v !== "object") return v === undefined ? v : REDACTED;
  return Object.fromEntries(Object.keys(v).map((k) => [k, REDACTED]));
}

/** Every secret value this process has been handed (env, settings, Secrets), for scrubbing. */
const knownSecrets = new Set<string>();

/**
 * Remember secret values wherever the driver learns them (the agent's
 * environment, resolved settings, Kubernetes Secrets, CSI `secrets`), so that
 * {@linkcode knownSecretValues} can scrub them from any error or log line,
 * whichever request or code path the text came from.
 */
export function rememberSecretValues(values: Iterable<string | undefined>): void {
  for (const v of values) if (v !== undefined && v.length >= 3) knownSecrets.add(v);
}

/** The secret values remembered so far (longest first, so a value inside another goes last). */
export function knownSecretValues(): string[] {
  return [...knownSecrets].sort((a, b) => b.length - a.length);
}

/** Remove every occurrence of the given secret values from `text`. */
export function scrubValues(text: string, secrets: Iterable<string>): string {
  let out = text;
  for (const s of secrets) if (s.length >= 3) out = out.split(s).join(REDACTED);
  return out;
}

/** Values in `req` that must never be echoed (the secrets map, secret-named keys). */
export function secretValuesOf(value: unknown, acc: string[] = []): string[] {
  if (Array.isArray(value)) {
    for (const v of value) secretValuesOf(v, acc);
    return acc;
  }
  if (value === null || typeof value !== "object") return acc;
  for (const [k, v] of Object.entries(value)) {
    if (SECRET_MAPS.has(k) && v && typeof v === "object") {
      acc.push(...Object.values(v).filter((s): s is string => typeof s === "string"));
    } else if (SECRET_KEY.test(k) && typeof v === "string") acc.push(v);
    else secretValuesOf(v, acc);
  }
  return acc;
}
