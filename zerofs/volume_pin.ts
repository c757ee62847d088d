/**
 * A volume's pin: where its objects live and which Secrets unlock them,
 * fixed when the volume is created, so that editing a ConfigMap (or the
 * driver defaults) can never re-point an existing volume at an empty prefix
 * — where the next stage would format a fresh disk and DeleteVolume would
 * delete the wrong objects.
 *
 * The pinned keys are settings keys ({@linkcode PINNED_KEYS}). A pin is
 * stored twice, in two spellings:
 * - the volume context (the PV's volumeAttributes) and a publish context:
 *   `zerofs.csi/<key>` ({@linkcode PIN_CONTEXT_PREFIX}), read by the node;
 * - the controller's volume record: `pin: { <key>: value }`.
 *
 * Values are the settings' canonical strings; `""` means "pinned as unset"
 * (no endpoint, no region, no Secret), while a key left out is not pinned
 * and comes from the settings as before. A pin wins over every settings
 * source; {@linkcode applyPin} reports each key where the settings now say
 * something else, so the caller can warn.
 *
 * @module
 */

import { parseSettingValue, SETTINGS_FIX_HINT, type VolumeSettings } from "./settings.ts";
import { SettingsError } from "./types.ts";

/** Settings keys a pin fixes: the location, how to reach it, and the Secrets' names. */
export const PINNED_KEYS = [
  "storageURL",
  "awsEndpoint",
  "awsDefaultRegion",
  "awsAllowHTTP",
  "awsCredentialsSecretName",
  "encryptionPasswordSecretName",
] as const;

/** One of {@linkcode PINNED_KEYS}. */
export type PinnedKey = (typeof PINNED_KEYS)[number];

/** Prefix of the pin's keys in a volume or publish context. */
export const PIN_CONTEXT_PREFIX = "zerofs.csi/";

/** Pinned values by settings key; `""` = pinned as unset, absent = not pinned. */
export type VolumePin = Partial<Record<PinnedKey, string>>;

/** A pinned key on which the settings now disagree with the pin. */
export interface PinDisagreement {
  key: PinnedKey;
  /** The value the volume keeps (`""` = unset). */
  pinned: string;
  /** What the settings resolve to now (`""` = unset). */
  current: string;
}

const PINNED: ReadonlySet<string> = new Set(PINNED_KEYS);

/**
 * The pin of a volume created with `settings`: every pinned key, unset ones
 * as `""`.
 *
 * @example
 * ```ts
 * const pin = pinFromSettings(resolveSettings({ parameters: {}, configMap: { storageURL: "s3://b/v" } }));
 * // → { storageURL: "s3://b/v", awsEndpoint: "", …, awsAllowHTTP: "false", … }
 * ```
 */
export function pinFromSettings(settings: VolumeSettings): Required<VolumePin> {
  return {
    storageURL: settings.storageURL,
    awsEndpoint: settings.awsEndpoint ?? "",
    awsDefaultRegion: settings.awsDefaultRegion ?? "",
    awsAllowHTTP: String(settings.awsAllowHTTP === true),
    awsCredentialsSecretName: settings.awsCredentialsSecretName ?? "",
    encryptionPasswordSecretName: settings.encryptionPasswordSecretName ?? "",
  };
}

/** The volume-context spelling of `key`: `zerofs.csi/<key>`. */
export function pinContextKey(key: PinnedKey): string {
  return PIN_CONTEXT_PREFIX + key;
}

/** `pin` as volume-context (or publish-context) entries. */
export function pinToContext(pin: VolumePin): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of PINNED_KEYS) {
    if (pin[key] !== undefined) out[pinContextKey(key)] = pin[key]!;
  }
  return out;
}

/**
 * The pin carried by a volume or publish context (`field` names it in
 * errors), validated like any setting: a `zerofs.csi/` key that is not
 * pinned, or a malformed value, is a {@linkcode SettingsError}
 * (INVALID_ARGUMENT) naming the key. `null` when the context has no pin key.
 */
export function pinFromContext(
  context: Record<string, string>,
  field: string,
): VolumePin | null {
  const raw: Record<string, string> = {};
  for (const [name, value] of Object.entries(context)) {
    if (!name.startsWith(PIN_CONTEXT_PREFIX)) continue;
    const key = name.slice(PIN_CONTEXT_PREFIX.length);
    if (!PINNED.has(key)) {
      throw new SettingsError(
        `unknown ${field} key ${JSON.stringify(name)}; the pinned keys are ` +
          `${PINNED_KEYS.map(pinContextKey).join(", ")}`,
      );
    }
    raw[key] = value;
  }
  if (Object.keys(raw).length === 0) return null;
  return parsePinValues(raw, (key) => `${field} key "${pinContextKey(key)}"`);
}

/**
 * A pin as stored in a volume record (settings keys, no prefix). Unknown
 * keys and malformed values are a {@linkcode SettingsError} naming `where`.
 */
export function parsePin(raw: Record<string, string>, where: string): VolumePin {
  for (const key of Object.keys(raw)) {
    if (!PINNED.has(key)) {
      throw new SettingsError(`${where}: unknown pinned key ${JSON.stringify(key)}`);
    }
  }
  return parsePinValues(raw, (key) => `${where} key "${key}"`);
}

function parsePinValues(
  raw: Record<string, string>,
  where: (key: PinnedKey) => string,
): VolumePin {
  const pin: VolumePin = {};
  for (const key of PINNED_KEYS) {
    const value = raw[key];
    if (value === undefined) continue;
    if (typeof value !== "string") {
      throw new SettingsError(`invalid ${where(key)}: must be a string`);
    }
    pin[key] = canonicalPinValue(key, value, where(key));
  }
  return pin;
}

/** The canonical string of one pinned value; the storage URL cannot be pinned as unset. */
function canonicalPinValue(key: PinnedKey, value: string, where: string): string {
  if (value === "") {
    if (key === "storageURL") {
      throw new SettingsError(
        `invalid ${where} = "": a pinned storage URL cannot be empty; ` +
          `give the URL the volume was created at (s3://bucket/prefix)`,
      );
    }
    return key === "awsAllowHTTP" ? "false" : "";
  }
  try {
    return String(parseSettingValue(key, value, where));
  } catch (e) {
    if (!(e instanceof SettingsError)) throw e;
    // A pinned value is fixed where the volume was written down, not in the ConfigMap.
    const fix = "fix the PersistentVolume's volumeAttributes (or the controller's volume record)";
    throw new SettingsError(
      e.message.includes(SETTINGS_FIX_HINT)
        ? e.message.replace(SETTINGS_FIX_HINT, fix)
        : `${e.message}; ${fix}`,
    );
  }
}

/**
 * `settings` with the pinned keys replaced by `pin`'s values, and every
 * pinned key whose value the settings now disagree with. The pin wins.
 *
 * @example
 * ```ts
 * const { settings, disagreements } = applyPin(resolved, { storageURL: "s3://b/a" });
 * for (const d of disagreements) log.log("warn", describeDisagreement(d));
 * ```
 */
export function applyPin(
  settings: VolumeSettings,
  pin: VolumePin,
): { settings: VolumeSettings; disagreements: PinDisagreement[] } {
  const current = pinFromSettings(settings);
  const out: VolumeSettings = { ...settings };
  const disagreements: PinDisagreement[] = [];
  for (const key of PINNED_KEYS) {
    const pinned = pin[key];
    if (pinned === undefined) continue;
    if (pinned !== current[key]) disagreements.push({ key, pinned, current: current[key] });
    setPinned(out, key, pinned);
  }
  return { settings: out, disagreements };
}

function setPinned(settings: VolumeSettings, key: PinnedKey, value: string): void {
  switch (key) {
    case "storageURL":
      settings.storageURL = value;
      return;
    case "awsAllowHTTP":
      settings.awsAllowHTTP = value === "true";
      return;
    default:
      if (value === "") delete settings[key];
      else settings[key] = value;
  }
}

/**
 * One line about a disagreement: the key, the value kept and the value the
 * settings now give. Pinned values are never secret values: URLs carrying
 * credentials are refused, and the Secrets appear only by name.
 */
export function describeDisagreement(d: PinDisagreement): string {
  const show = (v: string) => v === "" ? "(unset)" : JSON.stringify(v);
  return `setting "${d.key}" now resolves to ${show(d.current)} but the volume is pinned to ` +
    `${show(d.pinned)} (${pinContextKey(d.key)}); the pinned value is used`;
}
