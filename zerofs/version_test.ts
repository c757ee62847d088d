import { deepStrictEqual as assertEquals, equal, ok, throws } from "node:assert/strict";
import { SettingsError } from "./types.ts";
import {
  detectBinaryVersion,
  imageVersion,
  incompatibilityReason,
  parseZeroFsVersion,
  storageFamily,
  zerofsFeatures,
  type ZeroFsVersion,
} from "./version.ts";

const v = (text: string): ZeroFsVersion => parseZeroFsVersion(text)!;

Deno.test("parseZeroFsVersion: release numbers only", () => {
  assertEquals(parseZeroFsVersion("0.16.2"), { major: 0, minor: 16, patch: 2 });
  assertEquals(parseZeroFsVersion(" 2.3.0\n"), { major: 2, minor: 3, patch: 0 });
  for (const bad of ["", "v0.16.2", "0.16", "0.16.2-rc1", "latest", "0.16.x"]) {
    equal(parseZeroFsVersion(bad), null, bad);
  }
});

Deno.test("storage families: before 2.0.0 and from 2.0.0 on", () => {
  equal(storageFamily(v("0.16.2")), "0.x");
  equal(storageFamily(v("0.19.1")), "0.x");
  equal(storageFamily(v("1.0.7")), "0.x");
  equal(storageFamily(v("2.0.0")), "2.x");
  equal(storageFamily(v("2.3.0")), "2.x");
});

Deno.test("features by release", () => {
  assertEquals(zerofsFeatures(v("0.16.2")), {
    readOnlyServer: false,
    tuningTables: false,
    compression: false,
    rpcServer: false,
    telemetryTable: false,
    storageClass: false,
  });
  const f17 = zerofsFeatures(v("0.17.0"));
  ok(f17.readOnlyServer && f17.tuningTables && !f17.rpcServer);
  ok(zerofsFeatures(v("0.18.0")).rpcServer);
  ok(!zerofsFeatures(v("1.0.6")).telemetryTable);
  ok(zerofsFeatures(v("1.0.7")).telemetryTable);
  assertEquals(Object.values(zerofsFeatures(v("2.3.0"))), [true, true, true, true, true, true]);
});

Deno.test("incompatibilityReason: other family or an older release is refused, naming both", () => {
  equal(incompatibilityReason(v("0.16.2"), v("0.16.2")), null);
  equal(incompatibilityReason(v("0.16.2"), v("0.19.1")), null);
  equal(incompatibilityReason(v("2.0.0"), v("2.3.0")), null);
  const across = incompatibilityReason(v("0.16.2"), v("2.3.0"))!;
  ok(across.includes("ZeroFS 0.16.2") && across.includes("ZeroFS 2.3.0"), across);
  ok(across.includes("family 0.x") || across.includes("family 2.x"), across);
  const back = incompatibilityReason(v("2.3.0"), v("0.16.2"))!;
  ok(back.includes("2.3.0") && back.includes("0.16.2"), back);
  const older = incompatibilityReason(v("0.19.1"), v("0.16.2"))!;
  ok(older.includes("older") && older.includes("0.19.1") && older.includes("0.16.2"), older);
});

Deno.test("imageVersion: the tag is the release; no release tag is a settings error", () => {
  assertEquals(imageVersion("ghcr.io/barre/zerofs:0.16.2"), v("0.16.2"));
  assertEquals(imageVersion("registry:5000/zerofs:2.3.0"), v("2.3.0"));
  assertEquals(imageVersion("ghcr.io/barre/zerofs:v0.16.2"), v("0.16.2"));
  assertEquals(imageVersion("ghcr.io/barre/zerofs:0.16.2@sha256:" + "a".repeat(64)), v("0.16.2"));
  for (const bad of ["ghcr.io/barre/zerofs", "registry:5000/zerofs", "zerofs:latest"]) {
    throws(
      () => imageVersion(bad),
      (e: Error) => e instanceof SettingsError && e.message.includes("zerofsImage"),
      bad,
    );
  }
});

Deno.test("detectBinaryVersion: reads `--version`; a binary that prints none is refused", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const good = `${dir}/zerofs-good`;
    await Deno.writeTextFile(good, "#!/bin/sh\necho 'zerofs 0.16.2'\n", { mode: 0o755 });
    assertEquals(await detectBinaryVersion(good), v("0.16.2"));
    const bad = `${dir}/zerofs-bad`;
    await Deno.writeTextFile(bad, "#!/bin/sh\necho 'hello'\n", { mode: 0o755 });
    await detectBinaryVersion(bad).then(
      () => ok(false, "accepted a binary without a version"),
      (e) => ok(e instanceof SettingsError && e.message.includes("--version"), String(e)),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
