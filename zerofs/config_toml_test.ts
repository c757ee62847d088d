import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { createHash } from "node:crypto";
import { parse } from "smol-toml";
import { type RenderConfigOptions, renderConfigToml, tomlBasicString } from "./config_toml.ts";
import { resolveSettings, type VolumeSettings } from "./settings.ts";
import { secretEnv } from "./secrets.ts";

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
    ninep: { unix_socket: OPTS.ninepSocket },
    nbd: { unix_socket: OPTS.nbdSocket },
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
  const gcs = {
    ...baseSettings({ awsCredentialsSecretName: "aws" }),
    storageURL: "gs://bucket/base",
  };
  const gcsDoc = parseDoc(renderConfigToml(gcs, OPTS));
  assertEquals(gcsDoc.aws, undefined);
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
  assertEquals((doc.servers as Record<string, unknown>).rpc, { unix_socket: "/r/rpc.sock" });
  assertEquals(doc.telemetry, { enabled: true });
});

Deno.test("no TCP listener is ever configured", () => {
  const text = renderConfigToml(baseSettings(), { ...OPTS, rpcSocket: "/r/rpc.sock" });
  ok(!text.includes("addresses"), text);
  ok(!/\[servers\.(nfs|webui)\]/.test(text), text);
});

Deno.test("deterministic: same input, same bytes; a change changes the hash", () => {
  const hash = (text: string) => createHash("sha256").update(text).digest("hex");
  const a = renderConfigToml(baseSettings({ compression: "lz4" }), OPTS);
  const b = renderConfigToml(baseSettings({ compression: "lz4" }), { ...OPTS });
  assertEquals(hash(a), hash(b));
  const c = renderConfigToml(baseSettings({ compression: "zstd-1" }), OPTS);
  ok(hash(a) !== hash(c));
});
