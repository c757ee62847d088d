/**
 * Reading a ginkgo v2 run (csi-sanity is a ginkgo suite): the summary line
 * of its console output, and the skipped specs of its JUnit report.
 *
 * @module
 */

/** Counts from ginkgo's `Ran N of M Specs … P Passed | F Failed | … | S Skipped`. */
export interface GinkgoSummary {
  ran: number;
  total: number;
  passed: number;
  failed: number;
  pending: number;
  skipped: number;
}

const RAN = /Ran (\d+) of (\d+) Specs?/;
const COUNTS = /(\d+) Passed \| (\d+) Failed \| (?:\d+ Flaked \| )?(\d+) Pending \| (\d+) Skipped/;

/**
 * The summary of a ginkgo console output, or null when the run did not get
 * that far (a crash, a failed suite set-up).
 *
 * @example
 * ```ts
 * parseGinkgoSummary("Ran 2 of 3 Specs in 1.0 seconds\nSUCCESS! -- 2 Passed | 0 Failed | 0 Pending | 1 Skipped");
 * // { ran: 2, total: 3, passed: 2, failed: 0, pending: 0, skipped: 1 }
 * ```
 */
export function parseGinkgoSummary(output: string): GinkgoSummary | null {
  // deno-lint-ignore no-control-regex
  const plain = output.replace(/\x1b\[[0-9;]*m/g, "");
  const ran = RAN.exec(plain);
  const counts = COUNTS.exec(plain);
  if (!ran || !counts) return null;
  return {
    ran: Number(ran[1]),
    total: Number(ran[2]),
    passed: Number(counts[1]),
    failed: Number(counts[2]),
    pending: Number(counts[3]),
    skipped: Number(counts[4]),
  };
}

/** One spec the JUnit report lists as skipped, with ginkgo's reason. */
export interface SkippedSpec {
  name: string;
  reason: string;
}

/** The skipped specs of a ginkgo JUnit report (`--ginkgo.junit-report FILE`). */
export function skippedSpecs(junitXml: string): SkippedSpec[] {
  const out: SkippedSpec[] = [];
  const testcase = /<testcase\b([^>]*?)(\/>|>([\s\S]*?)<\/testcase>)/g;
  for (const m of junitXml.matchAll(testcase)) {
    const attrs = m[1];
    if (attribute(attrs, "status") !== "skipped") continue;
    const skipped = /<skipped\b([^>]*)>/.exec(m[3] ?? "");
    out.push({
      name: attribute(attrs, "name") ?? "(unnamed)",
      reason: (skipped && attribute(skipped[1], "message")) ?? "",
    });
  }
  return out;
}

function attribute(attrs: string, name: string): string | undefined {
  const m = new RegExp(`\\b${name}="([^"]*)"`).exec(attrs);
  return m ? decodeXml(m[1]) : undefined;
}

function decodeXml(text: string): string {
  return text.replace(/&(#x?[0-9a-fA-F]+|amp|lt|gt|quot|apos);/g, (_, e: string) => {
    switch (e) {
      case "amp":
        return "&";
      case "lt":
        return "<";
      case "gt":
        return ">";
      case "quot":
        return '"';
      case "apos":
        return "'";
    }
    return String.fromCodePoint(
      e.startsWith("#x") ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10),
    );
  });
}
