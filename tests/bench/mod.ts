/**
 * `deno task bench`: runs every section and prints one table each.
 *
 * Add a section: a module exporting `run(): Promise<BenchReport>`, listed in
 * {@linkcode SECTIONS}.
 *
 * @module
 */

import { run as createVolume } from "./create_volume.ts";
import type { BenchReport } from "./report.ts";
import { formatReport } from "./report.ts";

/** Every benchmark section, in the order they run. */
export const SECTIONS: Array<{ name: string; run: () => Promise<BenchReport> }> = [
  { name: "CreateVolume", run: createVolume },
];

if (import.meta.main) {
  const only = Deno.args[0];
  for (const section of SECTIONS) {
    if (only && section.name !== only) continue;
    console.log(formatReport(await section.run()));
  }
}
