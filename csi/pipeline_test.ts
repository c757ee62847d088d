import assert from "node:assert/strict";
import { ToolError } from "../blockdev/run.ts";
import { NoFreeDeviceError } from "../blockdev/types.ts";
import { SettingsError, ZeroFsNotReadyError } from "../zerofs/types.ts";
import { Code, CsiError, invalidArgument } from "./errors.ts";
import { VolumeLocks } from "./locks.ts";
import { createLogger } from "./log.ts";
import { type CsiRequest, runCall } from "./pipeline.ts";
import { REDACTED, rememberSecretValues } from "./redact.ts";

function capture(level: "debug" | "info" = "info") {
  const lines: string[] = [];
  const log = createLogger(level, (l) => lines.push(l));
  return { lines, ctx: { log, locks: new VolumeLocks() } };
}

Deno.test("pipeline: a second call on a busy volume is ABORTED at once, naming the first", async () => {
  const { ctx, lines } = capture();
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const slow = runCall(ctx, {
    method: "NodeStageVolume",
    req: { volume_id: "pvc-1" },
    handler: async () => {
      await gate;
      return {};
    },
  });
  const err = await runCall(ctx, {
    method: "NodeUnstageVolume",
    req: { volume_id: "pvc-1" },
    handler: () => Promise.resolve({}),
  }).then(() => null, (e) => e);
  assert.ok(err instanceof CsiError);
  assert.equal(err.code, Code.ABORTED);
  assert.equal(
    err.message,
    "operation NodeStageVolume on volume pvc-1 is in progress; retry later",
  );
  // Another volume is not blocked.
  await runCall(ctx, {
    method: "NodeStageVolume",
    req: { volume_id: "pvc-2" },
    handler: () => Promise.resolve({}),
  });
  release();
  await slow;
  // Released: the same volume works again.
  await runCall(ctx, {
    method: "NodeUnstageVolume",
    req: { volume_id: "pvc-1" },
    handler: () => Promise.resolve({}),
  });
  const aborted = lines.map((l) => JSON.parse(l)).find((l) => l.grpc_code === "ABORTED");
  assert.equal(aborted.method, "NodeUnstageVolume");
  assert.equal(aborted.volume_id, "pvc-1");
});

Deno.test("pipeline: CreateVolume is locked by name; lock released after a failure", async () => {
  const { ctx } = capture();
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const first = runCall(ctx, {
    method: "CreateVolume",
    req: { name: "pvc-n" },
    handler: async () => {
      await gate;
      throw invalidArgument("nope");
    },
  });
  await assert.rejects(
    runCall(ctx, {
      method: "CreateVolume",
      req: { name: "pvc-n" },
      handler: () => Promise.resolve({}),
    }),
    (e: CsiError) => e.code === Code.ABORTED,
  );
  release();
  await assert.rejects(first, (e: CsiError) => e.code === Code.INVALID_ARGUMENT);
  await runCall(ctx, {
    method: "CreateVolume",
    req: { name: "pvc-n" },
    handler: () => Promise.resolve({}),
  });
});

Deno.test("pipeline: domain errors map to their gRPC codes; the server never sees a raw throw", async () => {
  const { ctx } = capture();
  const cases: Array<[unknown, Code]> = [
    [new ToolError("mkfs.ext4", ["/dev/x"], 1, "boom"), Code.INTERNAL],
    [new NoFreeDeviceError("no nbd device is free"), Code.RESOURCE_EXHAUSTED],
    [new ZeroFsNotReadyError("not ready", "log tail"), Code.DEADLINE_EXCEEDED],
    [new SettingsError("bad key"), Code.INVALID_ARGUMENT],
    [new SettingsError("no ConfigMap", "precondition"), Code.FAILED_PRECONDITION],
    [new CsiError(Code.NOT_FOUND, "gone"), Code.NOT_FOUND],
    [new TypeError("undefined is not a function"), Code.INTERNAL],
    ["a string", Code.INTERNAL],
  ];
  for (const [thrown, code] of cases) {
    const err = await runCall(ctx, {
      method: "NodeStageVolume",
      req: { volume_id: "pvc-e" },
      handler: () => {
        throw thrown;
      },
    }).then(() => null, (e) => e);
    assert.ok(err instanceof CsiError, `${String(thrown)} became ${String(err)}`);
    assert.equal(Code[err.code], Code[code], String(thrown));
  }
  const tool = await runCall(ctx, {
    method: "X",
    req: {},
    handler: () => Promise.reject(new ToolError("blkid", [], 4, "bad device")),
  }).catch((e) => e);
  assert.match(tool.message, /^blkid exited with code 4: bad device$/);
});

Deno.test("pipeline: one log line per call; secrets redacted in debug request and error text", async () => {
  const { ctx, lines } = capture("debug");
  const req: CsiRequest = {
    volume_id: "pvc-s",
    secrets: { anything: "sekrit-value" },
    volume_context: { encryptionPassword: "pw-value-1", storageURL: "s3://b/p", apiToken: "tok-9" },
    volume_capability: { mount: { mount_flags: ["password=flagpw"] } },
  };
  await runCall(ctx, {
    method: "NodeStageVolume",
    req,
    handler: () => Promise.reject(new Error("failed with pw-value-1 and sekrit-value")),
  }).catch(() => {});
  const text = lines.join("");
  for (const s of ["sekrit-value", "pw-value-1", "tok-9", "flagpw"]) {
    assert.ok(!text.includes(s), `${s} leaked: ${text}`);
  }
  const [debugLine, rpcLine] = lines.map((l) => JSON.parse(l));
  assert.equal(debugLine.level, "debug");
  assert.equal(debugLine.request.secrets.anything, REDACTED);
  assert.equal(debugLine.request.volume_context.storageURL, "s3://b/p");
  assert.equal(rpcLine.msg, "rpc");
  assert.equal(rpcLine.method, "NodeStageVolume");
  assert.equal(rpcLine.volume_id, "pvc-s");
  assert.equal(rpcLine.grpc_code, "INTERNAL");
  assert.equal(typeof rpcLine.duration_ms, "number");
  assert.match(rpcLine.error, /failed with \[REDACTED\] and \[REDACTED\]/);
  assert.equal(lines.length, 2);
});

Deno.test("pipeline: info level does not log requests", async () => {
  const { ctx, lines } = capture("info");
  await runCall(ctx, { method: "Probe", req: {}, handler: () => Promise.resolve({}) });
  assert.equal(lines.length, 1);
  assert.equal(JSON.parse(lines[0]).grpc_code, "OK");
  assert.equal(JSON.parse(lines[0]).volume_id, undefined);
});

Deno.test("pipeline: known secret values are scrubbed; a ZeroFS log tail stays in the node's log", async () => {
  const { ctx, lines } = capture();
  // Known from the agent's environment / settings, not carried by this request.
  const password = "agent-env-password-91f3";
  const awsKey = "AKIAAGENTENVKEY7";
  rememberSecretValues([password, awsKey]);
  const err = await runCall(ctx, {
    method: "NodeStageVolume",
    req: { volume_id: "pvc-s", secrets: {} },
    handler: () => {
      throw new ZeroFsNotReadyError(
        `Volume "pvc-s": ZeroFS exited while starting (key ${awsKey})`,
        `✗ Error: wrong password ${password}\nsecond line`,
      );
    },
  }).then(() => null, (e) => e);
  assert.ok(err instanceof CsiError);
  assert.equal(err.code, Code.DEADLINE_EXCEEDED);
  assert.ok(!err.message.includes(awsKey), err.message);
  assert.ok(!err.message.includes("wrong password"), "no log tail in the reply: " + err.message);
  assert.match(err.message, /node agent's log/);
  const logged = lines.join("\n");
  assert.ok(!logged.includes(password) && !logged.includes(awsKey), logged);
  const line = lines.map((l) => JSON.parse(l)).find((l) => l.grpc_code === "DEADLINE_EXCEEDED");
  assert.equal(line.zerofs_log_tail, `✗ Error: wrong password ${REDACTED}\nsecond line`);
});
