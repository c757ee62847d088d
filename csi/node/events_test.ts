import assert from "node:assert/strict";
import { ZeroFsNotReadyError } from "../../zerofs/mod.ts";
import { REDACTED, rememberSecretValues } from "../redact.ts";
import { stageFailureReason, warningMessage } from "./events.ts";

Deno.test("a ZeroFS start failure's Event carries no log tail and no secret value", () => {
  const envPassword = "events-env-password-5d2c";
  rememberSecretValues([envPassword]);
  const err = new ZeroFsNotReadyError(
    `Volume "pvc-e": ZeroFS exited while starting (password ${envPassword})`,
    "✗ Error: storage said no\nINFO connecting to s3://bucket",
  );
  assert.equal(stageFailureReason(err), "ZeroFSNotReady");
  const message = warningMessage(err, {
    volume_id: "pvc-e",
    secrets: { password: "req-secret-1" },
  });
  assert.ok(!message.includes(envPassword), message);
  assert.ok(message.includes(REDACTED), message);
  assert.ok(!message.includes("storage said no") && !message.includes("s3://bucket"), message);
  assert.match(message, /node agent's log/);
  assert.ok(
    !warningMessage(new Error("boom req-secret-1"), { secrets: { password: "req-secret-1" } })
      .includes("req-secret-1"),
  );
});
