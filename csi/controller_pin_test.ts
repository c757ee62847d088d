import assert from "node:assert/strict";
import { createControllerService } from "./controller.ts";
import { ControllerSettings, FileConfigMapSource } from "./controller_settings.ts";
import { Code, toCsiError } from "./errors.ts";
import { createLogger } from "./log.ts";
import { type CsiRequest, handlerOf } from "./pipeline.ts";
import type { ControllerVolumeEntry, VolumeRegistry } from "./registry.ts";

/** Records in a Map: what the controller pins is read back from here. */
class MapRegistry implements VolumeRegistry {
  readonly entries = new Map<string, ControllerVolumeEntry>();
  get(name: string) {
    return Promise.resolve(this.entries.get(name) ?? null);
  }
  put(entry: ControllerVolumeEntry) {
    this.entries.set(entry.name, structuredClone(entry));
    return Promise.resolve();
  }
  delete(name: string) {
    this.entries.delete(name);
    return Promise.resolve();
  }
}

/** `memory://` storage: no pre-flight, nothing to delete, so only the pin logic runs. */
function settingsAt(storageURL: string, extra: Record<string, string> = {}) {
  return new ControllerSettings({
    defaults: { storageURL: "memory://defaults" },
    configMaps: new FileConfigMapSource({ zerofs: { storageURL, ...extra } }),
    env: () => undefined,
  });
}

function controller(storageURL: string) {
  const lines: Record<string, unknown>[] = [];
  const registry = new MapRegistry();
  const deps = {
    registry,
    settings: settingsAt(storageURL),
    log: createLogger("info", (l) => lines.push(JSON.parse(l))),
  };
  const rpc = createControllerService(deps);
  const call = (name: string, req: CsiRequest) =>
    // deno-lint-ignore no-explicit-any
    handlerOf(rpc, name)!(req) as Promise<Record<string, any>>;
  return { deps, registry, lines, call };
}

const MOUNT = { mount: { fs_type: "ext4" }, access_mode: { mode: "SINGLE_NODE_WRITER" } };
const publish = (volume_id: string, volume_context: Record<string, string> = {}) => ({
  volume_id,
  node_id: "node-a",
  volume_capability: MOUNT,
  readonly: false,
  volume_context,
});

Deno.test("CreateVolume pins the location in the volume context and the record", async () => {
  const { registry, call } = controller("memory://site-a");
  const res = await call("CreateVolume", {
    name: "pvc-pin",
    volume_capabilities: [MOUNT],
    parameters: { configMapName: "zerofs" },
  });
  assert.deepEqual(res.volume.volume_context, {
    configMapName: "zerofs",
    capacityBytes: String(1024 ** 3),
    fsType: "ext4",
    "zerofs.csi/storageURL": "memory://site-a",
    "zerofs.csi/awsEndpoint": "",
    "zerofs.csi/awsDefaultRegion": "",
    "zerofs.csi/awsAllowHTTP": "false",
    "zerofs.csi/awsCredentialsSecretName": "",
    "zerofs.csi/encryptionPasswordSecretName": "",
  });
  assert.equal(registry.entries.get("pvc-pin")!.pin!.storageURL, "memory://site-a");
});

Deno.test("after a ConfigMap edit, DeleteVolume works at the pin and warns per key", async () => {
  const { deps, lines, call } = controller("memory://site-a");
  await call("CreateVolume", {
    name: "pvc-moved",
    volume_capabilities: [MOUNT],
    parameters: { configMapName: "zerofs" },
  });
  deps.settings = settingsAt("memory://site-b", { awsDefaultRegion: "eu-west-1" });
  const pub = await call("ControllerPublishVolume", publish("pvc-moved"));
  assert.deepEqual(
    Object.keys(pub.publish_context).filter((k) => k.startsWith("zerofs.csi/")),
    [],
    "the volume context already carries the pin",
  );
  await call("ControllerUnpublishVolume", { volume_id: "pvc-moved", node_id: "node-a" });
  await call("DeleteVolume", { volume_id: "pvc-moved" });
  const warnings = lines.filter((l) => l.msg === "the settings disagree with the volume's pin");
  assert.deepEqual(warnings.map((w) => w.setting), ["storageURL", "awsDefaultRegion"]);
  assert.match(
    String(warnings[0].detail),
    /now resolves to "memory:\/\/site-b" but the volume is pinned to "memory:\/\/site-a"/,
  );
});

Deno.test("a record without a pin is pinned at its first publish; the publish context carries it", async () => {
  const { registry, lines, call, deps } = controller("memory://old-place");
  await registry.put({
    name: "pvc-old",
    capacityBytes: 4096,
    volumeContext: { configMapName: "zerofs", capacityBytes: "4096", fsType: "ext4" },
    parameters: { configMapName: "zerofs" },
    createdAt: "2026-01-01T00:00:00.000Z",
    publishedNodes: [],
  });
  const pub = await call("ControllerPublishVolume", publish("pvc-old"));
  assert.equal(pub.publish_context["zerofs.csi/storageURL"], "memory://old-place");
  assert.equal(registry.entries.get("pvc-old")!.pin!.storageURL, "memory://old-place");
  const pinned = lines.filter((l) => l.msg === "volume pinned to its location");
  assert.equal(pinned.length, 1);
  assert.equal(pinned[0].location, "memory://old-place/pvc-old");

  // From now on the pin holds: an edit changes neither the publish context nor the record.
  deps.settings = settingsAt("memory://new-place");
  const again = await call("ControllerPublishVolume", publish("pvc-old"));
  assert.equal(again.publish_context["zerofs.csi/storageURL"], "memory://old-place");
  assert.equal(lines.filter((l) => l.msg === "volume pinned to its location").length, 1);
});

Deno.test("a record without a pin is pinned at its first DeleteVolume", async () => {
  const { registry, lines, call } = controller("memory://here");
  await registry.put({
    name: "pvc-old-del",
    capacityBytes: 4096,
    volumeContext: {},
    parameters: { configMapName: "zerofs" },
    createdAt: "2026-01-01T00:00:00.000Z",
  });
  await call("DeleteVolume", { volume_id: "pvc-old-del" });
  assert.equal(registry.entries.get("pvc-old-del"), undefined);
  assert.ok(lines.some((l) => l.msg === "volume pinned to its location"));
});

Deno.test("ControllerPublishVolume refuses a malformed pin in a volume context, naming the key", async () => {
  const { call } = controller("memory://a");
  await call("CreateVolume", { name: "pvc-bad", volume_capabilities: [MOUNT], parameters: {} });
  await assert.rejects(
    call("ControllerPublishVolume", publish("pvc-bad", { "zerofs.csi/storageURL": "ftp://x" })),
    (e) => {
      const err = toCsiError(e);
      assert.equal(err.code, Code.INVALID_ARGUMENT);
      assert.match(err.message, /volume_context key "zerofs\.csi\/storageURL".*PersistentVolume/);
      return true;
    },
  );
});
