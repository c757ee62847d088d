/**
 * The errors of the ZeroFS layer that the CSI layer maps to gRPC codes. A
 * leaf: it imports nothing, so settings, secrets and runners can all use it.
 *
 * @module
 */

/**
 * ZeroFS did not become ready in time (→ DEADLINE_EXCEEDED). Carries its last
 * log lines in `logTail` for the node agent's own log — never in the message:
 * the message reaches kubelet, which puts it into Events in the tenant's
 * namespace, and ZeroFS's output is nothing a tenant should read.
 */
export class ZeroFsNotReadyError extends Error {
  override readonly name = "ZeroFsNotReadyError";
  constructor(message: string, readonly logTail: string) {
    super(
      logTail
        ? `${message} (its last log lines are in the node agent's log; ` +
          `\`zerofs-csi status\` on the node shows the instance)`
        : message,
    );
  }
}

/** A setting is wrong (→ INVALID_ARGUMENT) or something it names is missing (→ FAILED_PRECONDITION). */
export class SettingsError extends Error {
  override readonly name = "SettingsError";
  constructor(message: string, readonly kind: "invalid" | "precondition" = "invalid") {
    super(message);
  }
}
