import { deepStrictEqual as assertEquals, ok, throws } from "node:assert/strict";
import { createHash } from "node:crypto";
import { parse } from "smol-toml";
import { type RenderConfigOptions, renderConfigToml, tomlBasicString } from "./config_toml.ts";
import { resolveSettings, type VolumeSettings } from "./settings.ts";
import { secretEnv } from "./secrets.ts";
import { SettingsError } from "./types.ts";

const TRICKY = 'a"b\\c$d\ne\tf\u0001g${HOME}h';

/** ZeroFS turns `$$` back into `$` after TOML parsing. */
function unexpand(value: unknown): string {
  return String(value).replaceAll("$$", "$");
}

function baseSettings(extra: Record<string, string> = {}): VolumeSettings {
  return resolveSettings({ parameters: { storageURL: "s3://bucket/base", ...extra } });
}

const OPTS: RenderConfigOptions = {
  volumeId: "pvc-1",
  version: { major: 2, minor: 3, patch: 0 },
  ninepSocket: "/run/zerofs-csi/v/0123456789abcdef/9p.sock",
  nbdSocket: "/run/zerofs-csi/v/0123456789abcdef/nbd.sock",
  cacheDir: "/var/lib/zerofs-csi/cache/0123456789abcdef",
};

type Doc = Record<string, Record<string, unknown>>;

/** smol-toml returns null-prototype objects; plain ones compare with deepStrictEqual. */
function parseDoc(text: string): Doc {
  return JSON.parse(JSON.stringify(parse(text)));
}

Deno.test("minimal config: required keys, unix sockets only, telemetry off, no [aws]", () => {
  const doc = parseDoc(renderConfigToml(baseSettings(), OPTS));
  assertEquals(doc.cache, { dir: OPTS.cacheDir, disk_size_gb: 1, memory_size_gb: 0.25 });
  assertEquals(doc.storage, {
    url: "s3://bucket/base/pvc-1",
    encryption_password: "${ZEROFS_ENCRYPTION_PASSWORD}",
  });
  assertEquals(doc.servers, {
    ninep: { addresses: [], unix_socket: OPTS.ninepSocket },
    nbd: { addresses: [], unix_socket: OPTS.nbdSocket },
  });
  assertEquals(doc.telemetry, { enabled: false });
  assertEquals(Object.keys(doc).sort(), ["cache", "servers", "storage", "telemetry"]);
});

Deno.test("cache sizes are TOML floats (ZeroFS reads f64)", () => {
  const text = renderConfigToml(
    baseSettings({ cacheDiskSizeGB: "10", cacheMemorySizeGB: "1.5" }),
    OPTS,
  );
  ok(text.includes("disk_size_gb = 10.0\n"), text);
  ok(text.includes("memory_size_gb = 1.5\n"), text);
});

Deno.test("values with quotes, backslashes, $, newlines and control chars round-trip", () => {
  const settings = {
    ...baseSettings({ awsAllowHTTP: "true", awsDefaultRegion: "eu-west-1" }),
    awsEndpoint: `http://h/${TRICKY}`,
    storageClass: TRICKY,
  };
  const opts = {
    ...OPTS,
    ninepSocket: `/s/${TRICKY}`,
    nbdSocket: `/n/${TRICKY}`,
    cacheDir: `/c/${TRICKY}`,
  };
  const text = renderConfigToml(settings, opts);
  const doc = parseDoc(text);
  const servers = doc.servers as Record<string, Record<string, string>>;
  assertEquals(unexpand(doc.cache.dir), opts.cacheDir);
  assertEquals(unexpand(servers.ninep.unix_socket), opts.ninepSocket);
  assertEquals(unexpand(servers.nbd.unix_socket), opts.nbdSocket);
  assertEquals(unexpand(doc.storage.storage_class), TRICKY);
  assertEquals(unexpand(doc.aws.endpoint), settings.awsEndpoint);
  assertEquals(doc.aws.allow_http, "true");
  assertEquals(doc.aws.default_region, "eu-west-1");
  // A literal ${HOME} in a value must reach ZeroFS as $${HOME}, i.e. not expanded.
  ok(String(doc.cache.dir).includes("$${HOME}"));
  // The raw text has no bare newline or control char inside a value.
  for (const line of text.split("\n")) ok(!line.includes("\u0001") && !line.includes("\t"), line);
});

Deno.test("tomlBasicString escapes DEL and C0 controls as \\u", () => {
  assertEquals(tomlBasicString("\u007f\u0000"), '"\\u007F\\u0000"');
  assertEquals(parse(`k = ${tomlBasicString("x\u007fy\u001bz")}`).k, "x\u007fy\u001bz");
});

Deno.test("secrets appear only as ${VAR} references, never as values", () => {
  const secrets = {
    encryptionPassword: "enc-PASSWORD-value",
    awsAccessKeyId: "AKIAEXAMPLEVALUE",
    awsSecretAccessKey: "secret/access+key",
    awsSessionToken: "session-token-value",
  };
  const settings = baseSettings({
    awsCredentialsSecretName: "aws-creds",
    awsEndpoint: "http://127.0.0.1:9000",
  });
  const text = renderConfigToml(settings, {
    ...OPTS,
    secretEnvNames: Object.keys(secretEnv(secrets)),
  });
  for (const value of Object.values(secrets)) {
    ok(!text.includes(value), `secret value leaked into config.toml`);
  }
  const doc = parseDoc(text);
  assertEquals(doc.aws, {
    endpoint: "http://127.0.0.1:9000",
    access_key_id: "${AWS_ACCESS_KEY_ID}",
    secret_access_key: "${AWS_SECRET_ACCESS_KEY}",
    session_token: "${AWS_SESSION_TOKEN}",
  });
});

Deno.test("[aws] credential references follow awsCredentialsSecretName by default", () => {
  const withRef = parseDoc(
    renderConfigToml(baseSettings({ awsCredentialsSecretName: "aws" }), OPTS),
  );
  assertEquals(Object.keys(withRef.aws).sort(), ["access_key_id", "secret_access_key"]);
  // gs:// (which would get no [aws] table) is refused before anything is rendered.
  const gcs = {
    ...baseSettings({ awsCredentialsSecretName: "aws" }),
    storageURL: "gs://bucket/base",
  };
  throws(() => renderConfigToml(gcs, OPTS), SettingsError);
});

Deno.test("optional tables: [filesystem], [lsm], rpc listener, telemetry on", () => {
  const settings = baseSettings({
    compression: "zstd-5",
    filesystemMaxSizeGB: "100",
    lsmL0MaxSsts: "16",
    lsmMaxConcurrentCompactions: "4",
    lsmFlushIntervalSecs: "30",
    telemetry: "true",
  });
  const doc = parseDoc(
    renderConfigToml(settings, { ...OPTS, rpcSocket: "/r/rpc.sock" }),
  );
  assertEquals(doc.filesystem, { max_size_gb: 100, compression: "zstd-5" });
  assertEquals(doc.lsm, {
    l0_max_ssts: 16,
    max_concurrent_compactions: 4,
    flush_interval_secs: 30,
  });
  assertEquals((doc.servers as Record<string, unknown>).rpc, {
    addresses: [],
    unix_socket: "/r/rpc.sock",
  });
  assertEquals(doc.telemetry, { enabled: true });
});

Deno.test("no TCP listener is ever configured: every listener says addresses = []", () => {
  // Before 0.17 a missing `addresses` meant 127.0.0.1:5564 (9P) / :10809 (NBD).
  for (const version of [V0_16, OPTS.version]) {
    const rpcSocket = version === V0_16 ? undefined : "/r/rpc.sock";
    const text = renderConfigToml(baseSettings(), { ...OPTS, version, rpcSocket });
    const servers = parseDoc(text).servers as Record<string, { addresses?: unknown }>;
    for (const [name, listener] of Object.entries(servers)) {
      assertEquals(listener.addresses, [], `${name} in ${text}`);
    }
    ok(!/\[servers\.(nfs|webui)\]/.test(text), text);
  }
});

const V0_16 = { major: 0, minor: 16, patch: 2 };

Deno.test("ZeroFS 0.16: only the tables 0.16 knows (it refuses unknown keys)", () => {
  const doc = parseDoc(renderConfigToml(baseSettings(), { ...OPTS, version: V0_16 }));
  assertEquals(Object.keys(doc).sort(), ["cache", "servers", "storage"]);
  assertEquals(Object.keys(doc.storage).sort(), ["encryption_password", "url"]);
  assertEquals(Object.keys(doc.servers).sort(), ["nbd", "ninep"]);
  const withAws = parseDoc(
    renderConfigToml(
      baseSettings({ awsEndpoint: "http://127.0.0.1:9000", awsAllowHTTP: "true" }),
      { ...OPTS, version: V0_16 },
    ),
  );
  assertEquals(withAws.aws, { endpoint: "http://127.0.0.1:9000", allow_http: "true" });
});

Deno.test("ZeroFS 0.16: a setting 0.16 lacks is refused, naming the key and both releases", () => {
  const cases: [Record<string, string>, string, string][] = [
    [{ compression: "lz4" }, "compression", "2.0.0"],
    [{ storageClass: "STANDARD_IA" }, "storageClass", "2.0.0"],
    [{ filesystemMaxSizeGB: "100" }, "filesystemMaxSizeGB", "0.17.0"],
    [{ lsmL0MaxSsts: "8" }, "lsmL0MaxSsts", "0.17.0"],
    [{ lsmMaxConcurrentCompactions: "2" }, "lsmMaxConcurrentCompactions", "0.17.0"],
    [{ lsmFlushIntervalSecs: "10" }, "lsmFlushIntervalSecs", "0.17.0"],
    [{ telemetry: "true" }, "telemetry", "1.0.7"],
  ];
  for (const [extra, key, since] of cases) {
    throws(
      () => renderConfigToml(baseSettings(extra), { ...OPTS, version: V0_16 }),
      (e: Error) =>
        e instanceof SettingsError && e.message.startsWith(`${key} is set, but ZeroFS 0.16.2`) &&
        e.message.includes(`ZeroFS ${since}`),
      key,
    );
  }
  throws(
    () => renderConfigToml(baseSettings(), { ...OPTS, version: V0_16, rpcSocket: "/r/rpc.sock" }),
    /ZeroFS 0\.16\.2 has no RPC listener \(added in 0\.18\.0\)/,
  );
  // Telemetry off is what 0.16 does anyway: no table, no refusal.
  ok(!renderConfigToml(baseSettings(), { ...OPTS, version: V0_16 }).includes("telemetry"));
});

Deno.test("the header names the release the file is for", () => {
  ok(renderConfigToml(baseSettings(), { ...OPTS, version: V0_16 }).includes("ZeroFS 0.16.2"));
  ok(renderConfigToml(baseSettings(), OPTS).includes("ZeroFS 2.3.0"));
});

Deno.test("deterministic: same input, same bytes; a change changes the hash", () => {
  const hash = (text: string) => createHash("sha256").update(text).digest("hex");
  const a = renderConfigToml(baseSettings({ compression: "lz4" }), OPTS);
  const b = renderConfigToml(baseSettings({ compression: "lz4" }), { ...OPTS });
  assertEquals(hash(a), hash(b));
  const c = renderConfigToml(baseSettings({ compression: "zstd-1" }), OPTS);
  ok(hash(a) !== hash(c));
});
