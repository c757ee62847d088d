import assert from "node:assert/strict";
import { join, relative } from "node:path";
import type * as protoLoader from "@grpc/proto-loader";
import { PROTO_LOADER_OPTIONS } from "../proto.ts";
import { generateCsiMessages, GENERATED_DIR, generatorFlags, listFiles } from "./generate.ts";

async function contents(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const f of await listFiles(dir)) files.set(relative(dir, f), await Deno.readTextFile(f));
  return files;
}

Deno.test("the committed CSI message types equal a fresh generation from csi.proto", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const fresh = join(tmp, "generated");
    await generateCsiMessages(fresh);
    const want = await contents(fresh);
    const have = await contents(GENERATED_DIR);
    assert.ok(want.has("csi/v1/NodeStageVolumeRequest.ts"), "the generator wrote no CSI types");
    assert.deepEqual(
      [...have.keys()],
      [...want.keys()],
      "csi/messages/generated/ has other files than csi.proto generates: run deno task gen:csi-types",
    );
    for (const [name, text] of want) {
      assert.ok(
        have.get(name) === text,
        `csi/messages/generated/${name} differs from csi.proto: run deno task gen:csi-types`,
      );
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("generatorFlags: the decoder's options, and a refusal for one without a flag", () => {
  assert.deepEqual(generatorFlags(PROTO_LOADER_OPTIONS), [
    "--keepCase",
    "--longs=Number",
    "--enums=String",
    "--defaults",
    "--oneofs",
  ]);
  const withIncludes: protoLoader.Options = { ...PROTO_LOADER_OPTIONS, includeDirs: ["/x"] };
  assert.throws(() => generatorFlags(withIncludes), /includeDirs/);
});
