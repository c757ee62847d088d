/**
 * The e2e tier's STAND-INs for the two sidecars the Go proxy does not serve
 * (tests/e2e/livenessprobe_standin.ts, registrar_standin.ts), run as their images
 * run them (`deno run` with the images' permission flags) against a CSI Identity
 * server whose answers the test controls, with this test as the kubelet.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { csiServices, PROTO_LOADER_OPTIONS } from "../../csi/proto.ts";
import { pathExists, pollUntil } from "../../blockdev/mod.ts";
import { REPO_ROOT } from "../helpers/driver.ts";

const DRIVER = "zerofs.csi.driver";
/** What build.sh's stand-in images run, before the script's path. */
const IMAGE_DENO_FLAGS = [
  "run",
  "--quiet",
  "--cached-only",
  `--config=${join(REPO_ROOT, "deno.json")}`,
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-net",
];
const LIVENESSPROBE = join(REPO_ROOT, "tests/e2e/livenessprobe_standin.ts");
const REGISTRAR = join(REPO_ROOT, "tests/e2e/registrar_standin.ts");
const START_TIMEOUT_MS = 20_000;

/** The kubelet's side of k8s.io/kubelet/pkg/apis/pluginregistration/v1/api.proto, verbatim. */
const REGISTRATION_PROTO = `syntax = "proto3";
package pluginregistration;
message PluginInfo {
  string type = 1;
  string name = 2;
  string endpoint = 3;
  repeated string supported_versions = 4;
}
message RegistrationStatus {
  bool plugin_registered = 1;
  string error = 2;
}
message RegistrationStatusResponse {}
message InfoRequest {}
service Registration {
  rpc GetInfo(InfoRequest) returns (PluginInfo) {}
  rpc NotifyRegistrationStatus(RegistrationStatus) returns (RegistrationStatusResponse) {}
}
`;

type ProbeReply =
  | { ready: { value: boolean } | null }
  | { error: grpc.StatusObject["code"]; details: string }
  | { hangMs: number };

/** A CSI Identity server on a unix socket; `reply` decides each Probe's answer. */
interface IdentityServer {
  socket: string;
  reply: ProbeReply;
  probes: number;
  stop(): void;
}

async function startIdentity(dir: string): Promise<IdentityServer> {
  const socket = join(dir, "csi.sock");
  const server = new grpc.Server();
  const state: IdentityServer = {
    socket,
    reply: { ready: { value: true } },
    probes: 0,
    // grpc-js unlinks the socket file on shutdown.
    stop: () => server.forceShutdown(),
  };
  server.addService(csiServices().Identity, {
    GetPluginInfo: (_call: unknown, cb: grpc.sendUnaryData<unknown>) =>
      cb(null, { name: DRIVER, vendor_version: "test" }),
    GetPluginCapabilities: (_call: unknown, cb: grpc.sendUnaryData<unknown>) =>
      cb(null, { capabilities: [] }),
    Probe: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => {
      state.probes++;
      const reply = state.reply;
      if ("error" in reply) cb({ code: reply.error, details: reply.details });
      else if ("hangMs" in reply) setTimeout(() => cb(null, {}), reply.hangMs);
      else cb(null, reply);
    },
  } as grpc.UntypedServiceImplementation);
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(
      `unix://${socket}`,
      grpc.ServerCredentials.createInsecure(),
      (err) => err ? reject(err) : resolve(),
    )
  );
  return state;
}

interface StandIn {
  process: Deno.ChildProcess;
  output(): string;
  /** SIGKILL if still running; resolves with its exit status. */
  kill(): Promise<Deno.CommandStatus>;
}

function spawnStandIn(script: string, args: string[]): StandIn {
  const process = new Deno.Command(Deno.execPath(), {
    args: [...IMAGE_DENO_FLAGS, script, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  const collect = (stream: ReadableStream<Uint8Array>) =>
    stream.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({ write: (chunk) => void (out += chunk) }),
    );
  const drained = Promise.all([collect(process.stdout), collect(process.stderr)]);
  let exited = false;
  const status = process.status.then(async (s) => {
    exited = true;
    await drained;
    return s;
  });
  return {
    process,
    output: () => out,
    kill: () => {
      if (!exited) process.kill("SIGKILL");
      return status;
    },
  };
}

/** Run a stand-in to completion (a probe invocation): exit code and output. */
async function runStandIn(script: string, args: string[]): Promise<{ code: number; out: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...IMAGE_DENO_FLAGS, script, ...args],
    stdin: "null",
    signal: AbortSignal.timeout(START_TIMEOUT_MS),
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { code: out.code, out: text };
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

async function healthz(port: number): Promise<{ status: number; body: string; ms: number }> {
  const start = Date.now();
  const res = await fetch(`http://127.0.0.1:${port}/healthz`, {
    signal: AbortSignal.timeout(10_000),
  });
  return { status: res.status, body: await res.text(), ms: Date.now() - start };
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "standins-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("livenessprobe stand-in: /healthz follows the driver's Probe answer", async () => {
  await withDir(async (dir) => {
    const identity = await startIdentity(dir);
    const port = freePort();
    const probe = spawnStandIn(LIVENESSPROBE, [
      `--csi-address=unix://${identity.socket}`,
      `--health-port=${port}`,
      "--probe-timeout=1s",
    ]);
    try {
      const first = await pollUntil(
        () => healthz(port).catch(() => undefined),
        { timeoutMs: START_TIMEOUT_MS, maxIntervalMs: 200 },
      );
      assert.ok(first, `never served /healthz:\n${probe.output()}`);
      assert.deepEqual([first.status, first.body], [200, "ok"]);
      const other = await fetch(`http://127.0.0.1:${port}/metrics`);
      assert.equal(other.status, 404);
      await other.body?.cancel();

      // The spec: an absent `ready` means ready.
      identity.reply = { ready: null };
      assert.deepEqual(pick(await healthz(port)), [200, "ok"]);

      identity.reply = { ready: { value: false } };
      assert.deepEqual(pick(await healthz(port)), [500, "driver responded but is not ready"]);

      identity.reply = { error: grpc.status.FAILED_PRECONDITION, details: "agent is wedged" };
      const failed = await healthz(port);
      assert.equal(failed.status, 500);
      assert.match(failed.body, /agent is wedged/);

      // A Probe slower than --probe-timeout fails at the timeout, not when it answers.
      identity.reply = { hangMs: 5_000 };
      const slow = await healthz(port);
      assert.equal(slow.status, 500);
      assert.match(slow.body, /deadline/i);
      assert.ok(slow.ms >= 900 && slow.ms < 3_000, `answered after ${slow.ms} ms`);

      identity.reply = { ready: { value: true } };
      const probesBefore = identity.probes;
      assert.deepEqual(pick(await healthz(port)), [200, "ok"]);
      assert.equal(identity.probes, probesBefore + 1, "one Probe per /healthz");

      // The driver gone: 500 within the timeout.
      identity.stop();
      const gone = await healthz(port);
      assert.equal(gone.status, 500);
      assert.ok(gone.body.length > 0, "the error is in the body");
      assert.ok(gone.ms < 3_000, `answered after ${gone.ms} ms`);
    } finally {
      await probe.kill();
    }
  });
});

function pick(r: { status: number; body: string }): [number, string] {
  return [r.status, r.body];
}

Deno.test("livenessprobe stand-in: flags as upstream checks them", async () => {
  await withDir(async (dir) => {
    const both = await runStandIn(LIVENESSPROBE, [
      `--csi-address=${join(dir, "csi.sock")}`,
      "--health-port=9999",
      "--http-endpoint=127.0.0.1:9998",
    ]);
    assert.equal(both.code, 1, both.out);
    assert.match(both.out, /only one of --health-port and --http-endpoint/);

    // --http-endpoint alone, with the default --health-port: served there.
    const identity = await startIdentity(dir);
    const port = freePort();
    const probe = spawnStandIn(LIVENESSPROBE, [
      `--csi-address=${identity.socket}`,
      `--http-endpoint=127.0.0.1:${port}`,
    ]);
    try {
      const first = await pollUntil(
        () => healthz(port).catch(() => undefined),
        { timeoutMs: START_TIMEOUT_MS, maxIntervalMs: 200 },
      );
      assert.ok(first, `never served /healthz:\n${probe.output()}`);
      assert.deepEqual(pick(first), [200, "ok"]);
    } finally {
      await probe.kill();
      identity.stop();
    }
  });
});

type KubeletUnary<Res> = (
  request: unknown,
  options: grpc.CallOptions,
  callback: (err: Error | null, res: Res) => void,
) => void;

/** The kubelet's plugin watcher, as a client of the registration socket. */
function kubeletClient(regSocket: string) {
  return withProtoFile(REGISTRATION_PROTO, (path) => {
    const def = protoLoader.loadSync(path, PROTO_LOADER_OPTIONS);
    const Registration = grpc.makeGenericClientConstructor(
      def["pluginregistration.Registration"] as grpc.ServiceDefinition,
      "Registration",
    );
    const client = new Registration(`unix://${regSocket}`, grpc.credentials.createInsecure());
    const unary = <Res>(method: string, request: unknown): Promise<Res> =>
      new Promise((resolve, reject) =>
        (client as unknown as Record<string, KubeletUnary<Res>>)[method].call(
          client,
          request,
          { deadline: Date.now() + 10_000 },
          (err: Error | null, res: Res) => err ? reject(err) : resolve(res),
        )
      );
    return { client, unary };
  });
}

function withProtoFile<T>(text: string, fn: (path: string) => T): T {
  const dir = Deno.makeTempDirSync({ prefix: "regproto-" });
  try {
    const path = join(dir, "api.proto");
    Deno.writeTextFileSync(path, text);
    return fn(path);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

interface PluginInfo {
  type: string;
  name: string;
  endpoint: string;
  supported_versions: string[];
}

Deno.test("registrar stand-in: registers with the kubelet, exits on a refused registration", async () => {
  await withDir(async (dir) => {
    const identity = await startIdentity(dir);
    const registry = join(dir, "plugins_registry");
    const pluginDir = join(dir, "plugins", DRIVER);
    await Deno.mkdir(registry, { recursive: true });
    await Deno.mkdir(pluginDir, { recursive: true });
    const endpoint = join(pluginDir, "csi.sock");
    const probeArgs = [
      `--kubelet-registration-path=${endpoint}`,
      "--mode=kubelet-registration-probe",
    ];
    const registrar = spawnStandIn(REGISTRAR, [
      `--csi-address=${identity.socket}`,
      `--kubelet-registration-path=${endpoint}`,
      `--plugin-registration-path=${registry}`,
    ]);
    const regSocket = join(registry, `${DRIVER}-reg.sock`);
    const kubelet = kubeletClient(regSocket);
    try {
      const listening = await pollUntil(
        async () => (await pathExists(regSocket)) || undefined,
        { timeoutMs: START_TIMEOUT_MS, maxIntervalMs: 200 },
      );
      assert.ok(listening, `no ${regSocket}:\n${registrar.output()}`);
      assert.ok((await Deno.stat(regSocket)).isSocket);

      const info = await kubelet.unary<PluginInfo>("GetInfo", {});
      assert.deepEqual(info, {
        type: "CSIPlugin",
        name: DRIVER,
        endpoint,
        supported_versions: ["1.0.0"],
      });

      // The exec probe, as v2.15.0 runs it: a no-op that succeeds, registered or not.
      const before = await runStandIn(REGISTRAR, probeArgs);
      assert.equal(before.code, 0, before.out);
      await kubelet.unary("NotifyRegistrationStatus", { plugin_registered: true, error: "" });
      const after = await runStandIn(REGISTRAR, probeArgs);
      assert.equal(after.code, 0, after.out);
      assert.deepEqual(await listNames(pluginDir), [], "the probe writes nothing");
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(await exitedWithin(registrar, 0), undefined, "registered: keeps serving");

      await kubelet.unary("NotifyRegistrationStatus", {
        plugin_registered: false,
        error: "driver name taken",
      });
      const status = await exitedWithin(registrar, 5_000);
      assert.ok(status, "a refused registration ends the registrar");
      assert.equal(status.code, 1);
      assert.match(registrar.output(), /registered=false error=driver name taken/);
    } finally {
      kubelet.client.close();
      await registrar.kill();
      identity.stop();
    }
  });
});

Deno.test("registrar stand-in: the probe mode needs --kubelet-registration-path, nothing else", async () => {
  // No CSI socket, no registration directory: upstream's mode exits before both.
  const ok = await runStandIn(REGISTRAR, [
    "--csi-address=/nonexistent/csi.sock",
    "--kubelet-registration-path=/nonexistent/plugins/x/csi.sock",
    "--mode=kubelet-registration-probe",
  ]);
  assert.equal(ok.code, 0, ok.out);
  const missing = await runStandIn(REGISTRAR, ["--mode=kubelet-registration-probe"]);
  assert.equal(missing.code, 1, missing.out);
  assert.match(missing.out, /--kubelet-registration-path is required/);
});

Deno.test("registrar stand-in: SIGTERM removes the registration socket", async () => {
  await withDir(async (dir) => {
    const identity = await startIdentity(dir);
    const registrar = spawnStandIn(REGISTRAR, [
      `--csi-address=unix://${identity.socket}`,
      `--kubelet-registration-path=/var/lib/kubelet/plugins/${DRIVER}/csi.sock`,
      `--plugin-registration-path=${dir}`,
    ]);
    const regSocket = join(dir, `${DRIVER}-reg.sock`);
    try {
      const listening = await pollUntil(
        async () => (await pathExists(regSocket)) || undefined,
        { timeoutMs: START_TIMEOUT_MS, maxIntervalMs: 200 },
      );
      assert.ok(listening, `no ${regSocket}:\n${registrar.output()}`);
      registrar.process.kill("SIGTERM");
      const status = await exitedWithin(registrar, 5_000);
      assert.equal(status?.code, 0, registrar.output());
      assert.equal(await pathExists(regSocket), false);
    } finally {
      await registrar.kill();
      identity.stop();
    }
  });
});

async function listNames(dir: string): Promise<string[]> {
  const names = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names;
}

/** The stand-in's exit status if it exits within `ms`, else undefined. */
async function exitedWithin(s: StandIn, ms: number): Promise<Deno.CommandStatus | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<undefined>((r) => timer = setTimeout(() => r(undefined), ms));
  try {
    return await Promise.race([s.process.status, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
