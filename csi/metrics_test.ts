import assert from "node:assert/strict";
import {
  csiMethodPath,
  DriverMetrics,
  grpcCodeLabel,
  type NodeGauges,
  OPERATION_SECONDS_BUCKETS,
  parseListenAddress,
  startMetricsServer,
} from "./metrics.ts";

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Exposition {
  help: Map<string, string>;
  type: Map<string, string>;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A strict parser of the text exposition format: throws on any malformed line. */
function parseExposition(text: string): Exposition {
  const out: Exposition = { help: new Map(), type: new Map(), samples: [] };
  assert.ok(text.endsWith("\n"), "exposition must end with a newline");
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta) {
      assert.match(meta[2], METRIC_NAME, line);
      if (meta[1] === "TYPE") {
        assert.ok(["counter", "gauge", "histogram", "summary", "untyped"].includes(meta[3]), line);
        out.type.set(meta[2], meta[3]);
      } else {
        out.help.set(meta[2], meta[3]);
      }
      continue;
    }
    assert.ok(!line.startsWith("#"), `unexpected comment: ${line}`);
    out.samples.push(parseSample(line));
  }
  return out;
}

function parseSample(line: string): Sample {
  const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
  assert.ok(nameMatch, `no metric name: ${line}`);
  const name = nameMatch[0];
  let i = name.length;
  const labels: Record<string, string> = {};
  if (line[i] === "{") {
    i++;
    while (line[i] !== "}") {
      const eq = line.indexOf("=", i);
      const labelName = line.slice(i, eq);
      assert.match(labelName, LABEL_NAME, line);
      assert.equal(line[eq + 1], '"', line);
      let value = "";
      let j = eq + 2;
      for (; line[j] !== '"'; j++) {
        assert.ok(j < line.length, `unterminated label value: ${line}`);
        if (line[j] === "\\") {
          const escaped = line[++j];
          assert.ok(["\\", '"', "n"].includes(escaped), `bad escape \\${escaped}: ${line}`);
          value += escaped === "n" ? "\n" : escaped;
        } else {
          value += line[j];
        }
      }
      assert.ok(!(labelName in labels), `duplicate label ${labelName}: ${line}`);
      labels[labelName] = value;
      i = j + 1;
      if (line[i] === ",") i++;
    }
    i++;
  }
  const rest = line.slice(i);
  const valueMatch = /^ (\S+)( -?\d+)?$/.exec(rest);
  assert.ok(valueMatch, `bad value part "${rest}": ${line}`);
  const raw = valueMatch[1];
  const value = raw === "+Inf" ? Infinity : raw === "-Inf" ? -Infinity : Number(raw);
  assert.ok(raw === "NaN" || !Number.isNaN(value), `bad number ${raw}: ${line}`);
  return { name, labels, value };
}

function seriesKey(labels: Record<string, string>): string {
  return JSON.stringify(Object.entries(labels).filter(([k]) => k !== "le").sort());
}

/** Checks every histogram: cumulative buckets, +Inf == _count, a _sum per series. */
function assertHistogramsConsistent(exp: Exposition): void {
  for (const [name, type] of exp.type) {
    if (type !== "histogram") continue;
    const series = new Map<string, { buckets: [number, number][]; count?: number; sum?: number }>();
    const get = (labels: Record<string, string>) => {
      const key = seriesKey(labels);
      if (!series.has(key)) series.set(key, { buckets: [] });
      return series.get(key)!;
    };
    for (const s of exp.samples) {
      if (s.name === `${name}_bucket`) {
        assert.ok("le" in s.labels, `bucket without le: ${JSON.stringify(s)}`);
        const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
        get(s.labels).buckets.push([le, s.value]);
      } else if (s.name === `${name}_count`) get(s.labels).count = s.value;
      else if (s.name === `${name}_sum`) get(s.labels).sum = s.value;
    }
    assert.ok(series.size > 0, `histogram ${name} has no series`);
    for (const [key, h] of series) {
      for (let k = 1; k < h.buckets.length; k++) {
        assert.ok(h.buckets[k][0] > h.buckets[k - 1][0], `${name}${key}: le not increasing`);
        assert.ok(h.buckets[k][1] >= h.buckets[k - 1][1], `${name}${key}: buckets not cumulative`);
      }
      const last = h.buckets.at(-1)!;
      assert.equal(last[0], Infinity, `${name}${key}: last bucket must be +Inf`);
      assert.equal(last[1], h.count, `${name}${key}: +Inf bucket must equal _count`);
      assert.equal(typeof h.sum, "number", `${name}${key}: missing _sum`);
    }
  }
}

const NODE_STATE: NodeGauges = {
  volumesStaged: 3,
  nbdDevicesInUse: 3,
  nbdDevicesAvailable: 13,
  zerofsInstancesReady: 2,
  zerofsInstancesNotReady: 1,
  volumesAbnormal: 1,
};

function sample(exp: Exposition, name: string, labels: Record<string, string> = {}): number {
  const found = exp.samples.filter((s) =>
    s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
  );
  assert.equal(found.length, 1, `expected one ${name}${JSON.stringify(labels)}`);
  return found[0].value;
}

Deno.test("grpc status codes are spelled like csi-lib-utils (Go's codes.String)", () => {
  assert.equal(grpcCodeLabel(0), "OK");
  assert.equal(grpcCodeLabel(1), "Canceled");
  assert.equal(grpcCodeLabel(9), "FailedPrecondition");
  assert.equal(grpcCodeLabel(10), "Aborted");
  assert.equal(grpcCodeLabel(16), "Unauthenticated");
  assert.equal(grpcCodeLabel(42), "Code(42)");
  assert.equal(grpcCodeLabel(null), "unknown-non-grpc");
});

Deno.test("RPC names become the full gRPC method path the sidecars use", () => {
  assert.equal(csiMethodPath("NodeStageVolume"), "/csi.v1.Node/NodeStageVolume");
  assert.equal(csiMethodPath("GetPluginInfo"), "/csi.v1.Identity/GetPluginInfo");
  assert.equal(csiMethodPath("Probe"), "/csi.v1.Identity/Probe");
  assert.equal(csiMethodPath("CreateVolume"), "/csi.v1.Controller/CreateVolume");
  assert.equal(csiMethodPath("/csi.v1.Node/NodeGetInfo"), "/csi.v1.Node/NodeGetInfo");
});

Deno.test("render after observations is valid exposition with consistent histograms", async () => {
  const metrics = new DriverMetrics();
  const stage = csiMethodPath("NodeStageVolume");
  for (const seconds of [0.05, 0.3, 0.3, 7, 1000]) {
    metrics.observeRpc({ method: stage, grpcCode: 0, seconds });
  }
  metrics.observeRpc({ method: stage, grpcCode: 10, seconds: 0.001 });
  metrics.setNodeGauges(NODE_STATE);

  const exp = parseExposition(await metrics.render());
  assertHistogramsConsistent(exp);

  const name = "csi_plugin_operations_seconds";
  assert.equal(exp.type.get(name), "histogram");
  assert.equal(
    exp.help.get(name),
    "[ALPHA] Container Storage Interface operation duration with gRPC error code status total",
  );
  const ok = { driver_name: "zerofs.csi.driver", method_name: stage, grpc_status_code: "OK" };
  assert.equal(sample(exp, `${name}_count`, ok), 5);
  assert.ok(Math.abs(sample(exp, `${name}_sum`, ok) - 1007.65) < 1e-9);
  assert.equal(sample(exp, `${name}_bucket`, { ...ok, le: "0.1" }), 1);
  assert.equal(sample(exp, `${name}_bucket`, { ...ok, le: "0.5" }), 3);
  assert.equal(sample(exp, `${name}_bucket`, { ...ok, le: "10" }), 4);
  assert.equal(sample(exp, `${name}_bucket`, { ...ok, le: "600" }), 4);
  assert.equal(sample(exp, `${name}_bucket`, { ...ok, le: "+Inf" }), 5);
  assert.equal(sample(exp, `${name}_count`, { ...ok, grpc_status_code: "Aborted" }), 1);
  const les = exp.samples
    .filter((s) => s.name === `${name}_bucket` && s.labels.grpc_status_code === "OK")
    .map((s) => s.labels.le);
  assert.deepEqual(les, [...OPERATION_SECONDS_BUCKETS.map(String), "+Inf"]);

  assert.equal(exp.type.get("zerofs_csi_volumes_staged"), "gauge");
  assert.equal(sample(exp, "zerofs_csi_volumes_staged"), 3);
  assert.equal(sample(exp, "zerofs_csi_nbd_devices_in_use"), 3);
  assert.equal(sample(exp, "zerofs_csi_nbd_devices_available"), 13);
  assert.equal(sample(exp, "zerofs_csi_zerofs_instances", { state: "ready" }), 2);
  assert.equal(sample(exp, "zerofs_csi_zerofs_instances", { state: "not_ready" }), 1);
  assert.equal(sample(exp, "zerofs_csi_volumes_abnormal"), 1);
});

Deno.test("label values with quotes, backslashes and newlines are escaped", async () => {
  const metrics = new DriverMetrics({ driverName: 'we"ird\\name\nx' });
  metrics.observeRpc({ method: "/a\\b", grpcCode: 0, seconds: 1 });
  const text = await metrics.render();
  assert.ok(text.includes('driver_name="we\\"ird\\\\name\\nx"'), text);
  const exp = parseExposition(text);
  assert.equal(
    sample(exp, "csi_plugin_operations_seconds_count", {
      driver_name: 'we"ird\\name\nx',
      method_name: "/a\\b",
    }),
    1,
  );
});

Deno.test("node gauges are absent until reported, and read by the collector at scrape time", async () => {
  const metrics = new DriverMetrics();
  assert.ok(!(await metrics.render()).includes("zerofs_csi_volumes_staged"));

  let staged = 0;
  metrics.onCollect(() => metrics.setNodeGauges({ ...NODE_STATE, volumesStaged: ++staged }));
  assert.equal(sample(parseExposition(await metrics.render()), "zerofs_csi_volumes_staged"), 1);
  assert.equal(sample(parseExposition(await metrics.render()), "zerofs_csi_volumes_staged"), 2);
});

Deno.test("a failing collector leaves the node gauges out and counts the error", async () => {
  const errors: unknown[] = [];
  const metrics = new DriverMetrics({ onCollectError: (e) => errors.push(e) });
  metrics.setNodeGauges(NODE_STATE);
  let fail = true;
  metrics.onCollect(() => {
    if (fail) throw new Error("state dir unreadable");
  });
  metrics.observeRpc({ method: csiMethodPath("Probe"), grpcCode: 0, seconds: 0.001 });

  const failed = parseExposition(await metrics.render());
  assert.ok(!failed.samples.some((s) => s.name.startsWith("zerofs_csi_volumes")));
  assert.equal(sample(failed, "zerofs_csi_metrics_collect_errors_total"), 1);
  assert.equal(sample(failed, "csi_plugin_operations_seconds_count"), 1);
  assert.equal((errors[0] as Error).message, "state dir unreadable");

  fail = false;
  const recovered = parseExposition(await metrics.render());
  assert.equal(sample(recovered, "zerofs_csi_volumes_staged"), 3);
});

Deno.test("setNodeGauges rejects values that are not counts", () => {
  const metrics = new DriverMetrics();
  assert.throws(
    () => metrics.setNodeGauges({ ...NODE_STATE, volumesAbnormal: NaN }),
    /volumesAbnormal/,
  );
  assert.throws(() => metrics.setNodeGauges({ ...NODE_STATE, volumesStaged: -1 }), RangeError);
});

Deno.test("listen addresses parse like Go's host:port", () => {
  assert.deepEqual(parseListenAddress(":9808"), { hostname: "0.0.0.0", port: 9808 });
  assert.deepEqual(parseListenAddress("127.0.0.1:9808"), { hostname: "127.0.0.1", port: 9808 });
  assert.deepEqual(parseListenAddress("[::1]:0"), { hostname: "::1", port: 0 });
  assert.throws(() => parseListenAddress("9808"), /expected host:port/);
  assert.throws(() => parseListenAddress("127.0.0.1:70000"), /expected host:port/);
});

Deno.test("the metrics server answers /metrics on an ephemeral port and 404 elsewhere", async () => {
  const metrics = new DriverMetrics();
  metrics.observeRpc({ method: csiMethodPath("NodeGetInfo"), grpcCode: 0, seconds: 0.002 });
  const server = await startMetricsServer("127.0.0.1:0", metrics);
  try {
    assert.ok(server.port > 0);
    const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    const exp = parseExposition(await res.text());
    assert.equal(
      sample(exp, "csi_plugin_operations_seconds_count", {
        method_name: "/csi.v1.Node/NodeGetInfo",
      }),
      1,
    );
    const missing = await fetch(`http://127.0.0.1:${server.port}/`);
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
    const post = await fetch(`http://127.0.0.1:${server.port}/metrics`, { method: "POST" });
    assert.equal(post.status, 405);
    await post.body?.cancel();
  } finally {
    await server.close();
  }
});

Deno.test("a render failure answers 500 with the reason", async () => {
  const server = await startMetricsServer("127.0.0.1:0", {
    render: () => Promise.reject(new Error("registry broken")),
  });
  try {
    const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
    assert.equal(res.status, 500);
    assert.match(await res.text(), /registry broken/);
  } finally {
    await server.close();
  }
});

Deno.test("a taken port is reported with the address", async () => {
  const first = await startMetricsServer("127.0.0.1:0", new DriverMetrics());
  try {
    await assert.rejects(
      startMetricsServer(`127.0.0.1:${first.port}`, new DriverMetrics()),
      /Cannot serve metrics on 127\.0\.0\.1:\d+/,
    );
  } finally {
    await first.close();
  }
});
