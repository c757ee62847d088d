/**
 * The node agent's side of api_restart_test.ts: the driver's own Kubernetes
 * client code (settings ConfigMap, PodRunner, PodWatch) in a process of its
 * own, so a runtime crash — the failure the test guards against — ends only
 * this process and the test sees its exit signal.
 *
 * Usage: `deno run -A api_restart_client.ts KUBECONFIG NAMESPACE CONFIGMAP VOLUME_ID NODE STATE_DIR`.
 * Reads one command per stdin line and answers each with one JSON line on stdout:
 *
 * - `open`: read the ConfigMap (several times), the runner's status, and start a PodWatch on
 *   the volume's pod.
 * - `down`: for a few seconds, read the ConfigMap and the status every 250 ms; all must fail.
 * - `up`: read the ConfigMap until it answers (≤ 30 s), then a few more times.
 * - `pod`: the watch opened before the restart sees the volume's pod (created by the test),
 *   then PodRunner.stop deletes it and waits until it is gone.
 * - `exit`: close the watch and exit 0.
 *
 * @module
 */

import { PodRunner, readConfigMapData, zerofsPodName } from "../../zerofs/mod.ts";
import { createKubeClient, PodWatch } from "../../kube/mod.ts";

/** Settings reads before the restart, as an agent staging several volumes makes. */
const OPEN_READS = 10;
const DOWN_PROBE_MS = 3_000;
const PROBE_INTERVAL_MS = 250;
const UP_TIMEOUT_MS = 30_000;
const WATCH_TIMEOUT_MS = 30_000;

const [kubeconfig, namespace, configMap, volumeId, nodeName, stateDir] = Deno.args;
const kube = await createKubeClient({ kubeconfig });
const runner = new PodRunner({ kube, namespace, nodeName });
const podName = zerofsPodName(volumeId, nodeName);
let watch: PodWatch | undefined;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const message = (e: unknown) => e instanceof Error ? e.message : String(e);

/** Each command's answer; `ok` says whether the step did what the test expects. */
const commands: Record<string, () => Promise<Record<string, unknown>>> = {
  async open() {
    let data;
    for (let i = 0; i < OPEN_READS; i++) data = await readConfigMapData(kube, namespace, configMap);
    const status = await runner.status(volumeId, stateDir);
    watch = await PodWatch.open(kube, namespace, podName);
    return { ok: data !== undefined && !status.running, data, status };
  },
  async down() {
    const errors = new Set<string>();
    let answered = 0;
    const until = Date.now() + DOWN_PROBE_MS;
    while (Date.now() < until) {
      for (
        const call of [
          () => readConfigMapData(kube, namespace, configMap),
          () => runner.status(volumeId, stateDir),
        ]
      ) {
        try {
          await call();
          answered++;
        } catch (e) {
          errors.add(message(e));
        }
      }
      await sleep(PROBE_INTERVAL_MS);
    }
    return { ok: answered === 0 && errors.size > 0, answered, errors: [...errors] };
  },
  async up() {
    const started = Date.now();
    let attempts = 0;
    let last = "";
    while (Date.now() - started < UP_TIMEOUT_MS) {
      attempts++;
      try {
        const data = await readConfigMapData(kube, namespace, configMap);
        const ms = Date.now() - started;
        for (let i = 1; i < OPEN_READS; i++) await readConfigMapData(kube, namespace, configMap);
        return { ok: data !== undefined, data, attempts, ms };
      } catch (e) {
        last = message(e);
      }
      await sleep(PROBE_INTERVAL_MS);
    }
    return { ok: false, attempts, last };
  },
  async pod() {
    const seen = await watch!.waitFor((p) => p !== undefined, WATCH_TIMEOUT_MS);
    const status = await runner.status(volumeId, stateDir);
    await runner.stop(volumeId, stateDir);
    const gone = await watch!.waitFor((p) => p === undefined, WATCH_TIMEOUT_MS);
    return { ok: seen && gone, seen, gone, status };
  },
  exit() {
    watch?.close();
    return Promise.resolve({ ok: true });
  },
};

const encoder = new TextEncoder();
let buffered = "";
for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
  buffered += chunk;
  let newline;
  while ((newline = buffered.indexOf("\n")) >= 0) {
    const command = buffered.slice(0, newline).trim();
    buffered = buffered.slice(newline + 1);
    const run = commands[command];
    const answer = run
      ? await run().catch((e) => ({ ok: false, error: message(e) }))
      : { ok: false, error: `unknown command ${command}` };
    await Deno.stdout.write(encoder.encode(JSON.stringify({ command, ...answer }) + "\n"));
    if (command === "exit") Deno.exit(0);
  }
}
