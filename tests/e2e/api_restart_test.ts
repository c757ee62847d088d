/**
 * The driver's Kubernetes client survives an API server restart (every
 * cluster upgrade does one): with connections open, the API server stops;
 * calls fail with ordinary errors while it is down, and the same client —
 * settings ConfigMap reads, PodRunner, a PodWatch opened before the restart —
 * works again once it is back on the same port.
 *
 * The client runs in a child process (api_restart_client.ts): a runtime crash
 * (Deno's node:http2 under client-node's undici once spoke HTTP/2 and
 * segfaulted here) ends that process, and this test fails naming its signal.
 * Fails (never skips) when the control-plane binaries are missing.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { runTool } from "../../blockdev/mod.ts";
import { startKubeCluster } from "../fixtures/kube_cluster.ts";
import { zerofsPodName } from "../../zerofs/mod.ts";

const CLIENT = fileURLToPath(new URL("./api_restart_client.ts", import.meta.url));
const NAMESPACE = "default";
const CONFIG_MAP = "zerofs-default";
const VOLUME_ID = "pvc-api-restart";
const NODE = "node-a";
/** Each restart is a chance for the crash this guards against; one alone missed it 1 in 3. */
const RESTARTS = 2;
const KUBECTL_TIMEOUT_MS = 60_000;
const ANSWER_TIMEOUT_MS = 90_000;
const STDERR_TAIL = 2_000;

/** The one place this test runs kubectl (the Go client: the control side never crashes). */
async function kubectl(kubeconfig: string, args: string[]): Promise<string> {
  const { stdout } = await runTool("kubectl", ["--kubeconfig", kubeconfig, ...args], {
    timeoutMs: KUBECTL_TIMEOUT_MS,
  });
  return stdout;
}

/** The client process: send a command, get its JSON answer; a crash fails with its signal. */
class ClientProcess implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #lines: AsyncIterator<string>;
  #stderr = "";

  constructor(args: string[]) {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLIENT, ...args],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    this.#lines = lines(child.stdout);
    (async () => {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        this.#stderr = (this.#stderr + chunk).slice(-STDERR_TAIL);
      }
    })();
  }

  async send(command: string): Promise<Record<string, unknown>> {
    try {
      await this.#writer.write(new TextEncoder().encode(command + "\n"));
    } catch {
      throw await this.#exitError(command);
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`client gave no answer to "${command}" in ${ANSWER_TIMEOUT_MS} ms`)),
        ANSWER_TIMEOUT_MS,
      );
    });
    try {
      const next = await Promise.race([this.#lines.next(), timeout]);
      if (next.done) throw await this.#exitError(command);
      const answer = JSON.parse(next.value);
      assert.ok(answer.ok, `client step "${command}" failed: ${next.value}`);
      return answer;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Resolves with the exit status once the client exits. */
  get status(): Promise<Deno.CommandStatus> {
    return this.#child.status;
  }

  async #exitError(command: string): Promise<Error> {
    const s = await this.#child.status;
    return new Error(
      `client process died before answering "${command}": ${
        s.signal ? `signal ${s.signal}` : `exit code ${s.code}`
      }; stderr:\n${this.#stderr}`,
    );
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#writer.close().catch(() => {});
    try {
      this.#child.kill("SIGKILL");
    } catch { /* already exited */ }
    await this.#child.status;
  }
}

async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffered = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      yield buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
    }
  }
}

Deno.test("the driver's Kubernetes client survives an API server restart", async () => {
  const cluster = await startKubeCluster();
  const stateDir = await Deno.makeTempDir({ prefix: "zerofs-api-restart-" });
  try {
    await kubectl(cluster.kubeconfig, [
      "create",
      "configmap",
      CONFIG_MAP,
      "-n",
      NAMESPACE,
      "--from-literal=cacheDiskSizeGB=1",
    ]);
    await using client = new ClientProcess([
      cluster.kubeconfig,
      NAMESPACE,
      CONFIG_MAP,
      VOLUME_ID,
      NODE,
      stateDir,
    ]);
    const opened = await client.send("open");
    assert.deepEqual(opened.data, { cacheDiskSizeGB: "1" });

    for (let restart = 1; restart <= RESTARTS; restart++) {
      await cluster.stopApiserver();
      const down = await client.send("down");
      console.log(`restart ${restart}, while down: ${JSON.stringify(down.errors)}`);
      await cluster.restartApiserver();
      const up = await client.send("up");
      assert.deepEqual(up.data, { cacheDiskSizeGB: "1" });
      console.log(`restart ${restart}: answering after ${up.attempts} attempt(s), ${up.ms} ms`);
    }

    // Unscheduled (no node in this cluster): deleting it is immediate.
    await kubectl(cluster.kubeconfig, [
      "run",
      zerofsPodName(VOLUME_ID, NODE),
      "-n",
      NAMESPACE,
      "--image=registry.invalid/zerofs:0",
      "--restart=Never",
    ]);
    const pod = await client.send("pod");
    assert.equal((pod.status as { running: boolean }).running, false);
    await client.send("exit");
    const status = await client.status;
    assert.equal(status.signal, null, `client process killed by ${status.signal}`);
    assert.equal(status.code, 0);
  } finally {
    await cluster.stop();
    await Deno.remove(stateDir, { recursive: true });
  }
});
