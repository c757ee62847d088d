import assert from "node:assert/strict";
import { parseGinkgoSummary, skippedSpecs } from "./ginkgo.ts";

Deno.test("ginkgo summary: counts from the console output, colours or not", () => {
  const out = "…\nRan 53 of 83 Specs in 45.200 seconds\n" +
    "\x1b[1mFAIL!\x1b[0m -- \x1b[32m32 Passed\x1b[0m | 21 Failed | 0 Pending | 30 Skipped\n";
  assert.deepEqual(parseGinkgoSummary(out), {
    ran: 53,
    total: 83,
    passed: 32,
    failed: 21,
    pending: 0,
    skipped: 30,
  });
  assert.equal(parseGinkgoSummary("panic: cannot connect"), null);
});

Deno.test("ginkgo JUnit report: skipped specs with their reasons", () => {
  const xml = `<testsuites><testsuite>
    <testcase name="[It] Node Service should work" classname="CSI" status="passed" time="1"></testcase>
    <testcase name="[It] ListSnapshots [Controller Server] &#34;x&#34; &amp; y" status="skipped" time="0">
      <skipped message="skipped - ListSnapshots not supported"></skipped>
    </testcase>
    <testcase name="[It] Empty" status="skipped"/>
  </testsuite></testsuites>`;
  assert.deepEqual(skippedSpecs(xml), [
    {
      name: '[It] ListSnapshots [Controller Server] "x" & y',
      reason: "skipped - ListSnapshots not supported",
    },
    { name: "[It] Empty", reason: "" },
  ]);
});
