/**
 * The real controller (main.ts under -P=controller) over its unix socket.
 */

import assert from "node:assert/strict";
import { createCsiClient, CsiCallError } from "../helpers/csi_client.ts";
import { makeTestDir, REPO_ROOT, type RunningDriver, startDriver } from "../helpers/driver.ts";
import { status } from "@grpc/grpc-js";
import { isProcessAlive, pollUntil } from "../../blockdev/mod.ts";
import { registerNode } from "../../csi/mod.ts";

const GiB = 1024 ** 3;
const mountCap = (fs_type = "ext4", mode = "SINGLE_NODE_WRITER") => ({
  mount: { fs_type, mount_flags: [] },
  access_mode: { mode },
});
const blockCap = (mode = "SINGLE_NODE_WRITER") => ({ block: {}, access_mode: { mode } });

/**
 * Settings for tests that do not touch an object store: volumes live at
 * `memory://` (no pre-flight, nothing to delete). The MinIO-backed paths
 * are in delete_volume_test.ts and preflight_test.ts.
 */
async function memorySettings(dir: string): Promise<string> {
  const path = `${dir}/settings.toml`;
  await Deno.writeTextFile(path, `storageURL = "memory://"\n`);
  return path;
}

async function withController(
  fn: (d: RunningDriver, dir: string) => Promise<void>,
  dirIn?: string,
  extraArgs: string[] = [],
): Promise<void> {
  const dir = dirIn ?? await makeTestDir();
  const driver = await startDriver({
    mode: "controller",
    args: [
      "--endpoint",
      `unix://${dir}/csi.sock`,
      "--state-dir",
      `${dir}/state`,
      "--config-source",
      "file",
      "--settings-file",
      await memorySettings(dir),
      ...extraArgs,
    ],
  });
  let failed = false;
  try {
    await fn(driver, dir);
  } catch (e) {
    failed = true;
    throw e;
  } finally {
    // A test's own failure says more than the stop's complaint about it.
    await driver.stop().catch((e) => {
      if (!failed) throw e;
    });
    if (!dirIn) await Deno.remove(dir, { recursive: true });
  }
}

async function expectCode(p: Promise<unknown>, code: status, re?: RegExp): Promise<CsiCallError> {
  const err = await p.then(
    () => assert.fail(`expected ${status[code]}, got success`),
    (e) => e,
  );
  assert.ok(err instanceof CsiCallError, String(err));
  assert.equal(status[err.code], status[code], err.message);
  if (re) assert.match(err.details, re);
  return err;
}

Deno.test("identity: plugin info, capabilities, probe", async () => {
  await withController(async ({ client }) => {
    const info = await client.identity.GetPluginInfo();
    assert.equal(info.name, "zerofs.csi.driver");
    assert.equal(info.vendor_version, "0.1.0");
    const caps = await client.identity.GetPluginCapabilities();
    assert.deepEqual(caps.capabilities.map((c: { type: string }) => c.type), [
      "service",
      "volume_expansion",
    ]);
    assert.equal(caps.capabilities[0].service.type, "CONTROLLER_SERVICE");
    assert.equal(caps.capabilities[1].volume_expansion.type, "OFFLINE");
    assert.equal((await client.identity.Probe()).ready.value, true);
  });
});

/**
 * Connections the server holds open on `socketPath`: the kernel lists a
 * server's accepted unix sockets under the listener's path (a client's end
 * has none), so these are the entries for that path besides the listener.
 */
async function serverConnections(socketPath: string): Promise<number> {
  const lines = (await Deno.readTextFile("/proc/net/unix")).split("\n").slice(1);
  const bound = lines.filter((line) => line.trim().split(/\s+/)[7] === socketPath);
  return bound.length - 1;
}

Deno.test("clients that close after hundreds of calls do not bring the server down (denoland/deno#36788)", async () => {
  await withController(async (d) => {
    const pid = d.process.pid;
    const idle = await serverConnections(d.socketPath);
    for (let round = 0; round < 3; round++) {
      const client = createCsiClient(d.socketPath, { ownConnection: true });
      for (let i = 0; i < 200; i++) await client.identity.Probe();
      const open = await serverConnections(d.socketPath);
      assert.ok(open > idle, `the client's connection is open on the server (${open} ≤ ${idle})`);
      client.close();
      // The crash came while the server handled the client's GOAWAY, before it
      // closed its end: once the connection is gone from the server, the server
      // has handled the close, and must still be running.
      const closed = async () => await serverConnections(d.socketPath) <= idle || undefined;
      assert.ok(
        await pollUntil(closed, { timeoutMs: 30_000 }),
        `the server never closed the connection in round ${round}`,
      );
      assert.ok(await isProcessAlive(pid), `the controller died in round ${round}:\n${d.output()}`);
    }
    assert.equal((await d.client.identity.Probe()).ready.value, true);
  });
});

Deno.test("controller: happy path of every RPC, idempotency, UNIMPLEMENTED", async () => {
  await withController(async ({ client }) => {
    const c = client.controller;
    const caps = await c.ControllerGetCapabilities();
    const types = caps.capabilities.map((x: { rpc: { type: string } }) => x.rpc.type).sort();
    assert.deepEqual(types, [
      "CREATE_DELETE_VOLUME",
      "EXPAND_VOLUME",
      "PUBLISH_READONLY",
      "PUBLISH_UNPUBLISH_VOLUME",
      "SINGLE_NODE_MULTI_WRITER",
    ]);
    const req = {
      name: "pvc-happy",
      capacity_range: { required_bytes: 5000 },
      volume_capabilities: [mountCap("xfs")],
      parameters: { filesystem: "xfs" },
    };
    const created = await c.CreateVolume(req);
    assert.equal(created.volume.volume_id, "pvc-happy");
    assert.equal(created.volume.capacity_bytes, 8192);
    assert.deepEqual(created.volume.volume_context, {
      filesystem: "xfs",
      capacityBytes: "8192",
      fsType: "xfs",
      // Where the volume lives, pinned at creation (zerofs/volume_pin.ts).
      "zerofs.csi/storageURL": "memory://",
      "zerofs.csi/awsEndpoint": "",
      "zerofs.csi/awsDefaultRegion": "",
      "zerofs.csi/awsAllowHTTP": "false",
      "zerofs.csi/awsCredentialsSecretName": "",
      "zerofs.csi/encryptionPasswordSecretName": "",
    });
    assert.deepEqual(await c.CreateVolume(req), created);
    await expectCode(
      c.CreateVolume({ ...req, capacity_range: { required_bytes: 2 * GiB } }),
      status.ALREADY_EXISTS,
    );
    const pub = await c.ControllerPublishVolume({
      volume_id: "pvc-happy",
      node_id: "node-a",
      volume_capability: mountCap("xfs"),
      readonly: false,
    });
    assert.deepEqual(pub.publish_context, { readonly: "false", capacityBytes: "8192" });
    const val = await c.ValidateVolumeCapabilities({
      volume_id: "pvc-happy",
      volume_capabilities: [mountCap("xfs")],
    });
    assert.equal(val.confirmed.volume_capabilities.length, 1);
    const bad = await c.ValidateVolumeCapabilities({
      volume_id: "pvc-happy",
      volume_capabilities: [mountCap("xfs", "MULTI_NODE_MULTI_WRITER")],
    });
    assert.equal(bad.confirmed, null);
    assert.match(bad.message, /MULTI_NODE_MULTI_WRITER is not supported/);
    // Offline expansion: refused while published (see the restart test below).
    await expectCode(
      c.ControllerExpandVolume({
        volume_id: "pvc-happy",
        capacity_range: { required_bytes: 2 * GiB },
      }),
      status.FAILED_PRECONDITION,
      /published to node\(s\) node-a/,
    );
    await c.ControllerUnpublishVolume({ volume_id: "pvc-happy", node_id: "node-a" });
    const exp = await c.ControllerExpandVolume({
      volume_id: "pvc-happy",
      capacity_range: { required_bytes: 2 * GiB },
    });
    assert.deepEqual(exp, { capacity_bytes: 2 * GiB, node_expansion_required: true });
    await c.DeleteVolume({ volume_id: "pvc-happy" });
    await c.DeleteVolume({ volume_id: "pvc-happy" });
    await expectCode(
      c.ControllerPublishVolume({
        volume_id: "pvc-happy",
        node_id: "node-a",
        volume_capability: mountCap("xfs"),
        readonly: false,
      }),
      status.NOT_FOUND,
    );
    await expectCode(c.ListVolumes({}), status.UNIMPLEMENTED);
    await expectCode(c.CreateSnapshot({ source_volume_id: "a", name: "b" }), status.UNIMPLEMENTED);
  });
});

Deno.test("controller: expansion waits until no node has the volume published, across restarts", async () => {
  const dir = await makeTestDir();
  const publish = (c: RunningDriver["client"]["controller"], node_id: string) =>
    c.ControllerPublishVolume({
      volume_id: "pvc-grow",
      node_id,
      volume_capability: mountCap(),
      readonly: false,
    });
  const expand = (c: RunningDriver["client"]["controller"], required_bytes: number) =>
    c.ControllerExpandVolume({ volume_id: "pvc-grow", capacity_range: { required_bytes } });
  try {
    await withController(async ({ client }) => {
      const c = client.controller;
      await c.CreateVolume({
        name: "pvc-grow",
        capacity_range: { required_bytes: GiB },
        volume_capabilities: [mountCap()],
      });
      await publish(c, "node-a");
      await publish(c, "node-b");
    }, dir);
    // A new controller process reads the publications from the record.
    await withController(async ({ client }) => {
      const c = client.controller;
      const refused = await expectCode(expand(c, 2 * GiB), status.FAILED_PRECONDITION);
      assert.match(
        refused.details,
        /volume pvc-grow is in use: published to node\(s\) node-a, node-b/,
      );
      assert.match(refused.details, /expands offline/);
      assert.match(refused.details, /delete the pods that use it/);
      // Nothing changed: the attachments still get the old size.
      assert.equal((await publish(c, "node-a")).publish_context.capacityBytes, String(GiB));
      // A size the volume already has needs no change and is answered while published.
      assert.deepEqual(await expand(c, GiB), {
        capacity_bytes: GiB,
        node_expansion_required: true,
      });
      await c.ControllerUnpublishVolume({ volume_id: "pvc-grow", node_id: "node-a" });
      await expectCode(expand(c, 2 * GiB), status.FAILED_PRECONDITION, /node\(s\) node-b;/);
      await c.ControllerUnpublishVolume({ volume_id: "pvc-grow", node_id: "node-b" });
    }, dir);
    await withController(async ({ client }) => {
      const c = client.controller;
      assert.deepEqual(await expand(c, 2 * GiB), {
        capacity_bytes: 2 * GiB,
        node_expansion_required: true,
      });
      // The next attach carries the new size to NodeStageVolume.
      assert.equal((await publish(c, "node-a")).publish_context.capacityBytes, String(2 * GiB));
      await c.ControllerUnpublishVolume({ volume_id: "pvc-grow", node_id: "node-a" });
      await c.DeleteVolume({ volume_id: "pvc-grow" });
    }, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("controller: any name works; a name that is not an ID gets a derived, stable ID", async () => {
  await withController(async ({ client }, dir) => {
    const c = client.controller;
    const create = (name: string, required_bytes = 4096) =>
      c.CreateVolume({
        name,
        capacity_range: { required_bytes },
        volume_capabilities: [mountCap()],
      });
    const sanityName = "sanity-Controller-51C5E1F1-2b4d6e8a"; // csi-sanity's shape
    const created = await create(sanityName);
    const id = created.volume.volume_id;
    assert.match(id, /^sanity-controller-51c5e1f1-2b4d6e8a-[0-9a-f]{16}$/);
    assert.deepEqual(await create(sanityName), created, "same name, same volume");
    await expectCode(create(sanityName, 2 * GiB), status.ALREADY_EXISTS, /does not fit/);
    const lower = await create(sanityName.toLowerCase());
    assert.equal(lower.volume.volume_id, sanityName.toLowerCase(), "a valid ID is its own ID");
    const record = JSON.parse(
      await Deno.readTextFile(`${dir}/state/controller/volumes/${id}.json`),
    );
    assert.equal(record.requestName, sanityName);
    // A name that happens to be another volume's derived ID is refused, not merged.
    await expectCode(create(id), status.ALREADY_EXISTS, /already has; use another name/);
    await c.DeleteVolume({ volume_id: id });
    assert.equal((await create(sanityName)).volume.volume_id, id);
  });
});

Deno.test("controller: publish only to registered nodes; one publication per node", async () => {
  const dir = await makeTestDir();
  const registry = `${dir}/nodes`;
  await withController(
    async ({ client, output }) => {
      const c = client.controller;
      await c.CreateVolume({ name: "pvc-pub", volume_capabilities: [mountCap()] });
      const pub = (node_id: string, extra: Record<string, unknown> = {}) =>
        c.ControllerPublishVolume({
          volume_id: "pvc-pub",
          node_id,
          volume_capability: mountCap(),
          readonly: false,
          ...extra,
        });
      assert.match(output(), /"msg":"node existence".*"source":"node registry /);
      await expectCode(pub("node-a"), status.NOT_FOUND, /node "node-a" does not exist/);
      await registerNode(registry, "node-a");
      await pub("node-a");
      await pub("node-a"); // the same publication again
      await expectCode(pub("node-a", { readonly: true }), status.ALREADY_EXISTS, /readonly false/);
      await expectCode(
        pub("node-a", { volume_capability: mountCap("ext4", "SINGLE_NODE_READER_ONLY") }),
        status.ALREADY_EXISTS,
        /access mode SINGLE_NODE_WRITER/,
      );
      await expectCode(
        pub("node-a", { volume_capability: blockCap() }),
        status.ALREADY_EXISTS,
        /mount access/,
      );
      const path = `${dir}/state/controller/volumes/pvc-pub.json`;
      const record = JSON.parse(await Deno.readTextFile(path));
      assert.deepEqual(record.publishedNodes, ["node-a"]);
      assert.deepEqual(record.publications["node-a"], {
        readonly: false,
        accessType: "mount",
        accessMode: "SINGLE_NODE_WRITER",
        fsType: "ext4",
        mountFlags: [],
      });
      await c.ControllerUnpublishVolume({ volume_id: "pvc-pub", node_id: "node-a" });
      await pub("node-a", { readonly: true }); // unpublished: a new publication is fine
      // A record from an older controller lists the node only: the first publish fills it in.
      const old = JSON.parse(await Deno.readTextFile(path));
      delete old.publications;
      await Deno.writeTextFile(path, JSON.stringify(old));
      await pub("node-a");
      await expectCode(pub("node-a", { readonly: true }), status.ALREADY_EXISTS);
    },
    dir,
    ["--node-registry", registry],
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("controller: INVALID_ARGUMENT for every missing required field", async () => {
  await withController(async ({ client }) => {
    const c = client.controller;
    const IA = status.INVALID_ARGUMENT;
    await expectCode(c.CreateVolume({ volume_capabilities: [mountCap()] }), IA, /name is required/);
    await expectCode(c.CreateVolume({ name: "pvc-x" }), IA, /volume_capabilities is required/);
    await expectCode(
      c.CreateVolume({ name: "pvc-x", volume_capabilities: [{ mount: {} }] }),
      IA,
      /access_mode is required/,
    );
    await expectCode(
      c.CreateVolume({
        name: "pvc-x",
        volume_capabilities: [{ access_mode: { mode: "SINGLE_NODE_WRITER" } }],
      }),
      IA,
      /access type/,
    );
    await expectCode(
      c.CreateVolume({ name: "x".repeat(129), volume_capabilities: [mountCap()] }),
      IA,
      /name is 129 bytes; at most 128/,
    );
    await expectCode(
      c.CreateVolume({
        name: "pvc-x",
        volume_capabilities: [mountCap()],
        parameters: { bogus: "1" },
      }),
      IA,
      /bogus/,
    );
    await expectCode(
      c.CreateVolume({
        name: "pvc-x",
        volume_capabilities: [mountCap("ext4")],
        parameters: { filesystem: "xfs" },
      }),
      IA,
      /give one filesystem/,
    );
    await expectCode(c.DeleteVolume({}), IA, /volume_id is required/);
    const pub = {
      volume_id: "pvc-x",
      node_id: "n",
      volume_capability: mountCap(),
      readonly: false,
    };
    await expectCode(c.ControllerPublishVolume({ ...pub, volume_id: "" }), IA, /volume_id/);
    await expectCode(c.ControllerPublishVolume({ ...pub, node_id: "" }), IA, /node_id is required/);
    await expectCode(
      c.ControllerPublishVolume({ ...pub, volume_capability: null }),
      IA,
      /volume_capability is required/,
    );
    await expectCode(c.ControllerUnpublishVolume({}), IA, /volume_id is required/);
    await expectCode(c.ValidateVolumeCapabilities({ volume_capabilities: [mountCap()] }), IA);
    await expectCode(
      c.ValidateVolumeCapabilities({ volume_id: "pvc-x" }),
      IA,
      /volume_capabilities/,
    );
    await expectCode(c.ControllerExpandVolume({ capacity_range: { required_bytes: 1 } }), IA);
    await expectCode(
      c.ControllerExpandVolume({ volume_id: "pvc-x" }),
      IA,
      /capacity_range is required/,
    );
    await expectCode(
      c.CreateVolume({
        name: "pvc-x",
        volume_capabilities: [mountCap()],
        capacity_range: { required_bytes: 5000, limit_bytes: 6000 },
      }),
      status.OUT_OF_RANGE,
    );
  });
});

Deno.test("controller: settings are checked at CreateVolume; publish is recorded", async () => {
  const dir = await makeTestDir();
  const driver = await startDriver({
    mode: "controller",
    args: ["--endpoint", `unix://${dir}/csi.sock`, "--state-dir", `${dir}/state`],
  });
  try {
    const c = driver.client.controller;
    // gs:// and azure:// could never authenticate ([aws] only) nor be deleted.
    for (const storageURL of ["gs://bucket/volumes", "azure://container/volumes"]) {
      await expectCode(
        c.CreateVolume({
          name: "pvc-nowhere",
          volume_capabilities: [mountCap()],
          parameters: { storageURL },
        }),
        status.INVALID_ARGUMENT,
        /is not supported.*s3:\/\/, memory:\/\//,
      );
    }
    await expectCode(
      c.CreateVolume({
        name: "pvc-cm",
        volume_capabilities: [mountCap()],
        parameters: { configMapName: "missing" },
      }),
      status.FAILED_PRECONDITION,
      /ConfigMap "missing"/,
    );
    await expectCode(
      c.CreateVolume({
        name: "pvc-sec",
        volume_capabilities: [mountCap()],
        parameters: { storageURL: "memory://" },
        secrets: { "aws-secret": "V4lue-not-shown" },
      }),
      status.INVALID_ARGUMENT,
      /unknown key "aws-secret" in the CSI secrets/,
    );
    const params = { storageURL: "memory://" };
    await c.CreateVolume({ name: "pvc-m", volume_capabilities: [mountCap()], parameters: params });
    const pub = { volume_id: "pvc-m", volume_capability: mountCap(), readonly: false };
    await c.ControllerPublishVolume({ ...pub, node_id: "n1" });
    await c.ControllerPublishVolume({ ...pub, node_id: "n1" });
    await c.ControllerPublishVolume({ ...pub, node_id: "n2" });
    const record = JSON.parse(
      await Deno.readTextFile(`${dir}/state/controller/volumes/pvc-m.json`),
    );
    assert.deepEqual(record.publishedNodes, ["n1", "n2"]);
    await c.ControllerUnpublishVolume({ volume_id: "pvc-m", node_id: "n1" });
    await expectCode(
      c.DeleteVolume({ volume_id: "pvc-m" }),
      status.FAILED_PRECONDITION,
      /still published to node\(s\) n2;/,
    );
    await c.ControllerUnpublishVolume({ volume_id: "pvc-m" }); // empty node_id = every node
    await c.DeleteVolume({ volume_id: "pvc-m" });
    // No record and no default storageURL: success, and the log says nothing was touched.
    await c.DeleteVolume({ volume_id: "pvc-unknown" });
    await driver.waitForOutput(/unknown volume deleted without touching the object store/);
    assert.ok(!driver.output().includes("V4lue-not-shown"));
  } finally {
    await driver.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("controller: volumes survive a restart of the controller process", async () => {
  const dir = await makeTestDir();
  try {
    const req = { name: "pvc-restart", volume_capabilities: [blockCap()] };
    let first: Record<string, unknown> = {};
    await withController(async ({ client }) => {
      first = await client.controller.CreateVolume(req);
    }, dir);
    await withController(async ({ client }) => {
      assert.deepEqual(await client.controller.CreateVolume(req), first);
      await expectCode(
        client.controller.CreateVolume({ ...req, capacity_range: { limit_bytes: 4096 } }),
        status.ALREADY_EXISTS,
      );
      await client.controller.DeleteVolume({ volume_id: "pvc-restart" });
    }, dir);
    await withController(async ({ client }) => {
      await expectCode(
        client.controller.ValidateVolumeCapabilities({
          volume_id: "pvc-restart",
          volume_capabilities: [blockCap()],
        }),
        status.NOT_FOUND,
      );
    }, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("controller: parallel calls on one volume → the loser gets ABORTED", async () => {
  await withController(async ({ client }) => {
    const c = client.controller;
    await c.CreateVolume({ name: "pvc-busy", volume_capabilities: [mountCap()] });
    // Each expand reads, writes and fsyncs the record, so calls sent in one
    // batch overlap on the server. Batches repeat until a clash is seen
    // (normally the first); every outcome must be OK or ABORTED.
    const aborted: CsiCallError[] = [];
    let size = 2;
    for (let round = 0; round < 20 && aborted.length === 0; round++) {
      const results = await Promise.allSettled(
        Array.from({ length: 8 }, () =>
          c.ControllerExpandVolume({
            volume_id: "pvc-busy",
            capacity_range: { required_bytes: size++ * GiB },
          })),
      );
      for (const r of results) {
        if (r.status === "fulfilled") continue;
        assert.equal(r.reason.code, status.ABORTED, String(r.reason));
        aborted.push(r.reason);
      }
    }
    assert.ok(aborted.length >= 1, "no call was ever rejected as busy");
    assert.match(
      aborted[0].details,
      /^operation ControllerExpandVolume on volume pvc-busy is in progress; retry later$/,
    );
  });
});

Deno.test("controller: secrets never reach the log, even at debug level", async () => {
  const dir = await makeTestDir();
  const driver = await startDriver({
    mode: "controller",
    args: [
      "--endpoint",
      `${dir}/csi.sock`,
      "--state-dir",
      `${dir}/state`,
      "--log-level",
      "debug",
      "--config-source",
      "file",
      "--settings-file",
      await memorySettings(dir),
    ],
  });
  try {
    const c = driver.client.controller;
    await c.CreateVolume({
      name: "pvc-secret",
      volume_capabilities: [mountCap()],
      secrets: { AWS_ACCESS_KEY_ID: "AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY: "S3cr3tValue-1" },
      parameters: { storageURL: "s3://b/p", preflight: "false" },
    });
    await expectCode(
      c.CreateVolume({
        name: "pvc-secret2",
        volume_capabilities: [mountCap()],
        parameters: { encryptionPassword: "Hunter2Hunter2" },
        secrets: { token: "T0kenValue-2" },
      }),
      status.INVALID_ARGUMENT,
    );
    await c.ControllerPublishVolume({
      volume_id: "pvc-secret",
      node_id: "n",
      volume_capability: mountCap(),
      readonly: false,
      secrets: { password: "PublishPw-3" },
    });
  } finally {
    await driver.stop();
    await Deno.remove(dir, { recursive: true });
  }
  const out = driver.output();
  assert.match(out, /"msg":"rpc request"/, "debug request logging is on");
  assert.match(out, /"method":"CreateVolume"/);
  for (const secret of ["S3cr3tValue-1", "Hunter2Hunter2", "T0kenValue-2", "PublishPw-3"]) {
    assert.ok(!out.includes(secret), `secret ${secret} leaked into the log:\n${out}`);
  }
  const rpcLines = out.split("\n").filter((l) => l.includes('"msg":"rpc"')).map((l) =>
    JSON.parse(l)
  );
  const create = rpcLines.find((l) => l.method === "CreateVolume" && l.grpc_code === "OK");
  assert.equal(create.volume_id, "pvc-secret");
  assert.equal(typeof create.duration_ms, "number");
});

Deno.test("controller: a stale socket is replaced, a live one refused", async () => {
  const dir = await makeTestDir();
  try {
    const stale = Deno.listen({ transport: "unix", path: `${dir}/csi.sock` });
    stale.close(); // leaves the socket file behind with nobody listening
    await withController(async (d) => {
      const second = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-P=controller",
          "--config",
          `${REPO_ROOT}/deno.json`,
          `${REPO_ROOT}/main.ts`,
          "controller",
          "--endpoint",
          d.socketPath,
          "--state-dir",
          `${dir}/state`,
        ],
        stdout: "piped",
        stderr: "piped",
      });
      const out = await second.output();
      assert.equal(out.code, 1);
      assert.match(new TextDecoder().decode(out.stderr), /another process is serving/);
    }, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: bad flag exits 2 with usage; version prints", async () => {
  const run = (args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-P=controller",
        "--config",
        `${REPO_ROOT}/deno.json`,
        `${REPO_ROOT}/main.ts`,
        ...args,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
  const bad = await run(["controller", "--no-such-flag"]);
  assert.equal(bad.code, 2);
  assert.match(new TextDecoder().decode(bad.stderr), /Usage: zerofs-csi controller/);
  const noVerb = await run(["frobnicate"]);
  assert.equal(noVerb.code, 2);
  const badMode = await run([
    "node",
    "--endpoint",
    "/run/zerofs-csi/x.sock",
    "--attach-mode",
    "nope",
  ]);
  assert.equal(badMode.code, 2);
  const version = await run(["version"]);
  assert.equal(version.code, 0);
  assert.equal(new TextDecoder().decode(version.stdout).trim(), "zerofs.csi.driver 0.1.0");
  const help = await run(["node", "--help"]);
  assert.equal(help.code, 0);
  assert.match(new TextDecoder().decode(help.stdout), /--attach-mode/);
  const notYet = await run(["doctor"]);
  assert.equal(notYet.code, 1);
});
