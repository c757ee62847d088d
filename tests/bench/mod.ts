/**
 * `deno task bench`: runs every section and prints one table each.
 *
 * Add a section: a module exporting `run(): Promise<BenchReport>`, listed in
 * {@linkcode SECTIONS}.
 *
 * @module
 */

import { run as createVolume } from "./create_volume.ts";
import { run as formatBytes } from "./format_bytes.ts";
import { run as nodePath } from "./node_path.ts";
import { run as vmNodePath } from "./vm_node_path.ts";
import type { BenchReport } from "./report.ts";
import { formatReport } from "./report.ts";

/** Every benchmark section, in the order they run. */
export const SECTIONS: Array<{ name: string; run: () => Promise<BenchReport | string> }> = [
  { name: "CreateVolume", run: createVolume },
  { name: "NodePath", run: nodePath },
  { name: "FormatBytes", run: formatBytes },
  { name: "VmNodePath", run: vmNodePath },
];

if (import.meta.main) {
  const only = Deno.args[0];
  for (const section of SECTIONS) {
    if (only && section.name !== only) continue;
    const result = await section.run();
    console.log(typeof result === "string" ? result : formatReport(result));
  }
}
