/**
 * The driver's folders import one way: csi → zerofs → kube and blockdev; a
 * folder reaches another only through that folder's `mod.ts`; and no module
 * of the driver imports itself back through a circle (type-only imports count).
 * Read from the source text, so a change that breaks it fails here, not in a
 * reader's head.
 *
 * @module
 */

import assert from "node:assert/strict";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
/** Each folder and the folders it may import. */
const MAY_IMPORT: Record<string, string[]> = {
  csi: ["zerofs", "kube", "blockdev"],
  zerofs: ["kube", "blockdev"],
  kube: [],
  blockdev: [],
};

/** Every non-test module of the driver, with the driver modules it imports. */
async function driverImports(): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  for (const folder of Object.keys(MAY_IMPORT)) {
    for await (const file of walk(join(ROOT, folder))) {
      if (file.endsWith("_test.ts") || file.includes("/generated/")) continue;
      const text = await Deno.readTextFile(file);
      const specifiers = [...text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)]
        .map((m) => resolve(dirname(file), m[1]));
      graph.set(file, specifiers);
    }
  }
  return graph;
}

async function* walk(dir: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) yield* walk(path);
    else if (entry.name.endsWith(".ts")) yield path;
  }
}

const folderOf = (file: string) => relative(ROOT, file).split("/")[0];

Deno.test("imports flow one way, and across folders only through mod.ts", async () => {
  const problems: string[] = [];
  for (const [file, imports] of await driverImports()) {
    const from = folderOf(file);
    for (const target of imports) {
      const to = folderOf(target);
      if (to === from || !(to in MAY_IMPORT)) continue;
      const where = `${relative(ROOT, file)} → ${relative(ROOT, target)}`;
      if (!MAY_IMPORT[from].includes(to)) problems.push(`${where}: ${from} may not import ${to}`);
      else if (relative(ROOT, target) !== `${to}/mod.ts`) {
        problems.push(`${where}: not ${to}/mod.ts`);
      }
    }
  }
  assert.deepEqual(problems, []);
});

Deno.test("no module imports itself back through a circle", async () => {
  const graph = await driverImports();
  const circles: string[][] = [];
  // Tarjan's strongly connected components: any component of two or more is a circle.
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(relative(ROOT, w));
      } while (w !== v);
      if (component.length > 1) circles.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  assert.deepEqual(circles, []);
});
