/**
 * Retries for object-store calls: exponential backoff with full jitter on
 * throttling, 5xx and network errors; anything else fails at once.
 *
 * @module
 */

/** How hard to retry one call. */
export interface RetryPolicy {
  /** Attempts in total, including the first. */
  maxAttempts: number;
  /** First backoff ceiling; doubles each attempt. */
  baseDelayMs: number;
  maxDelayMs: number;
}

/** Default for deletes: ~8 attempts over up to ~30 s. */
export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = {
  maxAttempts: 8,
  baseDelayMs: 100,
  maxDelayMs: 5_000,
};

/** S3 error codes that mean "slow down" or "try again". */
const RETRYABLE_CODES: ReadonlySet<string> = new Set([
  "SlowDown",
  "Throttling",
  "ThrottlingException",
  "RequestLimitExceeded",
  "TooManyRequests",
  "RequestTimeout",
  "RequestTimeTooSkewed",
  "InternalError",
  "ServiceUnavailable",
  "TimeoutError",
  "ECONNRESET",
  "ECONNREFUSED",
  "EPIPE",
  "ETIMEDOUT",
]);

/** What an S3 SDK error says, without anything that could hold a credential. */
export interface S3ErrorInfo {
  /** S3 error code (`NoSuchBucket`) or network error code (`ECONNREFUSED`). */
  code: string;
  httpStatus?: number;
  message: string;
}

/** Read the code, HTTP status and message out of an SDK or network error. */
export function describeS3Error(e: unknown): S3ErrorInfo {
  const err = e as {
    name?: string;
    code?: string;
    Code?: string;
    message?: string;
    $metadata?: { httpStatusCode?: number };
    cause?: { code?: string };
  };
  const named = err.name && err.name !== "Error" ? err.name : undefined;
  const code = err.Code ?? named ?? err.code ?? err.cause?.code ?? "UnknownError";
  return {
    code,
    httpStatus: err.$metadata?.httpStatusCode,
    message: String(err.message ?? e),
  };
}

/** True for throttling, 5xx and transient network failures. */
export function isRetryable(info: S3ErrorInfo): boolean {
  if (info.code === "AbortError") return false;
  if (RETRYABLE_CODES.has(info.code)) return true;
  return info.httpStatus !== undefined && (info.httpStatus === 429 || info.httpStatus >= 500);
}

/** Backoff before attempt `attempt + 1` (attempt counts from 1): full jitter under an exponential ceiling. */
export function backoffDelayMs(attempt: number, policy: RetryPolicy): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  return Math.floor(Math.random() * ceiling);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Options of {@linkcode withRetries}. */
export interface WithRetriesOptions {
  policy?: RetryPolicy;
  signal?: AbortSignal;
  /** Called before each backoff; must not log anything secret (it gets no secrets). */
  onRetry?: (info: S3ErrorInfo, attempt: number, delayMs: number) => void;
}

/**
 * Run `call` until it succeeds, fails with a non-retryable error, or the
 * attempts run out (then the last error is thrown).
 */
export async function withRetries<T>(
  call: () => Promise<T>,
  opts: WithRetriesOptions = {},
): Promise<T> {
  const policy = opts.policy ?? DEFAULT_RETRY_POLICY;
  for (let attempt = 1;; attempt++) {
    try {
      return await call();
    } catch (e) {
      const info = describeS3Error(e);
      if (opts.signal?.aborted || attempt >= policy.maxAttempts || !isRetryable(info)) throw e;
      const delayMs = backoffDelayMs(attempt, policy);
      opts.onRetry?.(info, attempt, delayMs);
      await sleep(delayMs, opts.signal);
    }
  }
}
