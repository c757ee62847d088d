/**
 * The CSI Identity service (served by controller and node alike).
 *
 * @module
 */

import type { IdentityHandlers } from "./pipeline.ts";
import { DRIVER_NAME, DRIVER_VERSION } from "./version.ts";

/** Options of {@linkcode createIdentityService}. */
export interface IdentityOptions {
  /** Advertise CONTROLLER_SERVICE and volume expansion (controller and node of one driver agree). */
  controllerService: boolean;
  /** Readiness reported by Probe; defaults to always ready. */
  ready?: () => boolean;
}

/** Identity handlers keyed by RPC name. */
export function createIdentityService(opts: IdentityOptions): IdentityHandlers {
  return {
    GetPluginInfo: () => Promise.resolve({ name: DRIVER_NAME, vendor_version: DRIVER_VERSION }),
    GetPluginCapabilities: () =>
      Promise.resolve({
        capabilities: opts.controllerService
          ? [
            { service: { type: "CONTROLLER_SERVICE" } },
            { volume_expansion: { type: "OFFLINE" } },
          ]
          : [{ volume_expansion: { type: "OFFLINE" } }],
      }),
    Probe: () => Promise.resolve({ ready: { value: opts.ready?.() ?? true } }),
  };
}
