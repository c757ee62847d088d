/**
 * Driver identity reported to Kubernetes.
 *
 * @module
 */

/** CSI driver name (`GetPluginInfo.name`, the CSIDriver object's name). */
export const DRIVER_NAME = "zerofs.csi.driver";
/** Driver version (`GetPluginInfo.vendor_version`, `zerofs-csi version`). */
export const DRIVER_VERSION = "0.1.0";
/** CSI spec version `csi/csi.proto` follows. */
export const CSI_SPEC_VERSION = "1.10.0";
