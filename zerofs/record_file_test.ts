import assert from "node:assert/strict";
import { join } from "node:path";
import {
  CorruptRecordError,
  defineRecord,
  readRecordFile,
  RecordFieldError,
  writeRecordFile,
} from "./record_file.ts";

interface Sample {
  label: string;
  size: number;
  /** Schema 2 only. */
  owner?: { name: string };
}

class CorruptSampleError extends CorruptRecordError {
  override readonly name = "CorruptSampleError";
}

const SAMPLE = defineRecord<Sample>({
  errorClass: CorruptSampleError,
  kind: "sample record",
  readableSchemas: [1, 2],
  remedy: "remove it",
  schema: 2,
  validate: (f, schema) => ({
    label: f.string("label", { nonEmpty: true }),
    size: f.integer("size"),
    owner: schema === 2 ? { name: f.object("owner").string("name") } : undefined,
  }),
});

const current: Sample = { label: "a", size: 3, owner: { name: "n" } };

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "record-file-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function corruptError(text: string | Uint8Array, where = "/x/s.json"): CorruptSampleError {
  try {
    SAMPLE.parse(text, where);
  } catch (e) {
    assert.ok(e instanceof CorruptSampleError, String(e));
    assert.ok(e instanceof CorruptRecordError);
    assert.equal(e.where, where);
    assert.ok(e.message.startsWith(`sample record ${where} `), e.message);
    assert.ok(e.message.endsWith("; remove it"), e.message);
    return e;
  }
  assert.fail(`parsed: ${text}`);
}

Deno.test("serialize stamps the current schema first; parse reads it back", () => {
  const text = SAMPLE.serialize({ ...current, schema: 9 } as Sample);
  assert.equal(
    text,
    '{\n  "schema": 2,\n  "label": "a",\n  "size": 3,\n  "owner": {\n    "name": "n"\n  }\n}\n',
  );
  assert.deepEqual(SAMPLE.parse(text, "/x/s.json"), current);
});

Deno.test("an older readable schema still parses; its absent fields stay absent", () => {
  const old = SAMPLE.parse(JSON.stringify({ schema: 1, label: "a", size: 3 }), "/x/s.json");
  assert.deepEqual(old, { label: "a", size: 3 });
  assert.equal("owner" in old, false);
});

Deno.test("corrupt JSON, invalid UTF-8 and non-objects are corrupt, never absent", () => {
  assert.match(corruptError("{not json").message, /is not valid JSON/);
  assert.match(corruptError("").message, /is not valid JSON/);
  assert.match(corruptError(new Uint8Array([0xff, 0xfe])).message, /is not valid JSON/);
  for (const text of ["null", "[]", "3"]) {
    assert.match(corruptError(text).message, /is not a JSON object/);
  }
});

Deno.test("an unknown schema names the schema found and the ones read", () => {
  for (const schema of [3, 0, "2", undefined]) {
    const e = corruptError(JSON.stringify({ ...current, schema }));
    assert.equal(e.schemaFound, schema);
    assert.ok(
      e.message.includes(`has schema ${JSON.stringify(schema) ?? "undefined"};`),
      e.message,
    );
    assert.match(e.message, /this driver reads schema 1, 2/);
  }
});

Deno.test("a bad field is named in the error, nested ones with their path", () => {
  const cases: [unknown, RegExp][] = [
    [{ ...current, label: "" }, /\(schema 2\) is invalid: label "" is not a non-empty string/],
    [{ ...current, size: 1.5 }, /invalid: size 1\.5 is not a whole number/],
    [{ label: "a", owner: { name: "n" } }, /invalid: size is missing/],
    [{ ...current, owner: { name: 7 } }, /invalid: owner\.name 7 is not a string/],
    [{ ...current, owner: undefined }, /invalid: owner is missing/],
  ];
  for (const [value, message] of cases) {
    const e = corruptError(JSON.stringify({ schema: 2, ...value as object }));
    assert.match(e.message, message);
    assert.equal(e.schemaFound, 2);
  }
});

Deno.test("serialize refuses a value that would not read back", () => {
  assert.throws(
    () => SAMPLE.serialize({ label: "a", size: 3 }),
    (e: Error) =>
      !(e instanceof CorruptRecordError) && /sample record.*owner is missing/.test(e.message),
  );
});

Deno.test("corrupt() builds the kind's error for a record found in the wrong place", () => {
  const e = SAMPLE.corrupt("/x/s.json", "belongs to another volume", 2);
  assert.ok(e instanceof CorruptSampleError);
  assert.equal(e.message, "sample record /x/s.json belongs to another volume; remove it");
});

Deno.test("RecordFieldError carries the field", () => {
  const e = new RecordFieldError("owner.name", "is missing");
  assert.equal(e.field, "owner.name");
  assert.equal(e.message, "owner.name is missing");
});

Deno.test("record files: absent → null, written 0600 atomically with no temp file left", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    assert.equal(await readRecordFile(SAMPLE, path), null);
    await writeRecordFile(SAMPLE, path, current);
    await writeRecordFile(SAMPLE, path, { ...current, size: 4 });
    assert.deepEqual(await readRecordFile(SAMPLE, path), { ...current, size: 4 });
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    const names = [];
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    assert.deepEqual(names, ["s.json"]);
  });
});

Deno.test("record files: a refused write leaves the old record; a torn one reads as corrupt", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "s.json");
    await writeRecordFile(SAMPLE, path, current);
    await assert.rejects(writeRecordFile(SAMPLE, path, { label: "", size: 1 }), /label/);
    assert.deepEqual(await readRecordFile(SAMPLE, path), current);
    await Deno.writeTextFile(path, "{torn");
    await assert.rejects(readRecordFile(SAMPLE, path), CorruptSampleError);
    const names = [];
    for await (const entry of Deno.readDir(dir)) names.push(entry.name);
    assert.deepEqual(names, ["s.json"]);
  });
});
