/**
 * Regenerates `generated/` from `../csi.proto` with @grpc/proto-loader's
 * type generator (`deno task gen:csi-types`). The generator runs with the
 * options the driver decodes with ({@linkcode PROTO_LOADER_OPTIONS}) and the
 * proto-loader version the driver imports (deno.json), so the types describe
 * exactly the objects the handlers receive; `generate_test.ts` fails when the
 * committed output differs from a fresh run.
 *
 * @module
 */

import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import type { Options } from "@grpc/proto-loader";
import { runTool } from "../../blockdev/mod.ts";
import { PROTO_LOADER_OPTIONS } from "../proto.ts";
import denoConfig from "../../deno.json" with { type: "json" };

const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CSI_DIR = join(REPO_ROOT, "csi");
/** Where the committed output lives. */
export const GENERATED_DIR = fileURLToPath(new URL("./generated", import.meta.url));
/** The generator's first run may have to fetch it from the npm registry. */
const GENERATOR_TIMEOUT_MS = 180_000;
const FMT_TIMEOUT_MS = 60_000;

/** Heads every generated file. */
export const GENERATED_HEADER =
  "// Generated from csi/csi.proto by `deno task gen:csi-types` (csi/messages/generate.ts); " +
  "do not edit.\n// deno-lint-ignore-file\n";

/**
 * The generator's flags for proto-loader `options`. An option it has no flag
 * for is refused, so the decoder and the types cannot silently disagree.
 */
export function generatorFlags(options: Options): string[] {
  const flags: string[] = [];
  for (const [key, value] of Object.entries(options)) {
    switch (key) {
      case "keepCase":
      case "defaults":
      case "arrays":
      case "objects":
      case "oneofs":
      case "json":
        if (value === true) flags.push(`--${key}`);
        break;
      case "longs":
      case "enums":
      case "bytes":
        // The loader takes the constructor (Number, String); the generator its name.
        if (value) flags.push(`--${key}=${(value as { name: string }).name}`);
        break;
      default:
        throw new Error(`proto-loader option "${key}" has no type-generator flag here`);
    }
  }
  return flags;
}

/** The generator as an npm specifier, at the version deno.json maps @grpc/proto-loader to. */
function generatorSpecifier(): string {
  const loader = (denoConfig.imports as Record<string, string>)["@grpc/proto-loader"];
  if (!loader?.startsWith("npm:")) {
    throw new Error(`deno.json maps @grpc/proto-loader to ${loader}, not an npm: specifier`);
  }
  return `${loader}/proto-loader-gen-types`;
}

/** Generate the TypeScript types of csi.proto into `outDir` (created; must not exist yet). */
export async function generateCsiMessages(outDir: string): Promise<void> {
  await Deno.mkdir(outDir);
  await runTool(Deno.execPath(), [
    "run",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-sys",
    generatorSpecifier(),
    "csi.proto",
    ...generatorFlags(PROTO_LOADER_OPTIONS),
    "--grpcLib=@grpc/grpc-js",
    "--importFileExtension=.ts",
    `--outDir=${outDir}`,
    `--includeDirs=${CSI_DIR}`,
  ], { timeoutMs: GENERATOR_TIMEOUT_MS });
  for (const file of await listFiles(outDir)) {
    const text = await Deno.readTextFile(file);
    await Deno.writeTextFile(file, GENERATED_HEADER + sourceRelative(text));
  }
  await runTool(Deno.execPath(), [
    "fmt",
    `--config=${join(REPO_ROOT, "deno.json")}`,
    outDir,
  ], { timeoutMs: FMT_TIMEOUT_MS });
}

/** The generator names the proto by its absolute path; the output must not depend on the checkout. */
function sourceRelative(text: string): string {
  return text.replaceAll(
    join(CSI_DIR, "csi.proto"),
    relative(REPO_ROOT, join(CSI_DIR, "csi.proto")),
  );
}

/** Every file below `dir`, sorted, as absolute paths. */
export async function listFiles(dir: string): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) files.push(...await listFiles(path));
    else files.push(path);
  }
  return files.sort();
}

async function removeIfPresent(dir: string): Promise<void> {
  await Deno.remove(dir, { recursive: true }).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
}

if (import.meta.main) {
  // Beside the old output, so a failed run leaves the committed files as they were.
  const fresh = `${GENERATED_DIR}.new`;
  await removeIfPresent(fresh);
  await generateCsiMessages(fresh);
  await removeIfPresent(GENERATED_DIR);
  await Deno.rename(fresh, GENERATED_DIR);
  console.log(
    `wrote ${(await listFiles(GENERATED_DIR)).length} files to ${
      relative(REPO_ROOT, GENERATED_DIR)
    }`,
  );
}
