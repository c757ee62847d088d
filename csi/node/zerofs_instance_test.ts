import assert from "node:assert/strict";
import { resolveSettings } from "../../zerofs/mod.ts";
import { createLogger } from "../log.ts";
import type { VolumeWarning } from "./events.ts";
import { PIN_DISAGREEMENT_REASON, settingsAtPin } from "./zerofs_instance.ts";

function recorder() {
  const lines: Record<string, unknown>[] = [];
  const warnings: VolumeWarning[] = [];
  return {
    lines,
    warnings,
    ctx: {
      log: createLogger("info", (l) => lines.push(JSON.parse(l))),
      events: {
        warn: (w: VolumeWarning) => {
          warnings.push(w);
          return Promise.resolve();
        },
      },
    },
  };
}

const nowAtB = resolveSettings({
  parameters: {},
  configMap: { storageURL: "s3://bucket/b", encryptionPasswordSecretName: "pw-b" },
});
const volumeContext = { "csi.storage.k8s.io/pvc/name": "data" };

Deno.test("stage settings: the pin wins; each disagreeing key is logged, one Warning event", async () => {
  const { ctx, lines, warnings } = recorder();
  const settings = await settingsAtPin(ctx, {
    volumeId: "pvc-1",
    volumeContext,
    pin: { storageURL: "s3://bucket/a", encryptionPasswordSecretName: "pw-a" },
  }, nowAtB);
  assert.equal(settings.storageURL, "s3://bucket/a");
  assert.equal(settings.encryptionPasswordSecretName, "pw-a");
  assert.deepEqual(lines.map((l) => [l.level, l.setting]), [
    ["warn", "storageURL"],
    ["warn", "encryptionPasswordSecretName"],
  ]);
  assert.equal(warnings.length, 1);
  assert.equal(warnings[0].reason, PIN_DISAGREEMENT_REASON);
  assert.equal(warnings[0].volumeContext, volumeContext);
  assert.match(warnings[0].message, /"storageURL" now resolves to "s3:\/\/bucket\/b"/);
});

Deno.test("stage settings: agreement or no pin → the settings, silently", async () => {
  const { ctx, lines, warnings } = recorder();
  const pin = { storageURL: "s3://bucket/b", encryptionPasswordSecretName: "pw-b" };
  assert.deepEqual(
    await settingsAtPin(ctx, { volumeId: "pvc-1", volumeContext, pin }, nowAtB),
    nowAtB,
  );
  assert.equal(
    await settingsAtPin(ctx, { volumeId: "pvc-1", volumeContext, pin: null }, nowAtB),
    nowAtB,
  );
  assert.deepEqual([lines, warnings], [[], []]);
});
