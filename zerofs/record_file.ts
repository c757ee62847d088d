/**
 * Versioned JSON records: the one way the driver stores what it must find
 * again after a crash. A record type is defined once ({@linkcode defineRecord})
 * with its kind, schema and field checks; reading it never guesses (only "no
 * file" means "no record"), and writing it stamps the schema and replaces the
 * file atomically.
 *
 * @module
 */

import { readFileIfExists, writeFileAtomic } from "./atomic_file.ts";

/**
 * A stored record cannot be trusted: not JSON, a schema this driver does not
 * read, or a bad field. Callers turn it into INTERNAL; it is never "absent".
 */
export class CorruptRecordError extends Error {
  override readonly name: string = "CorruptRecordError";
  /**
   * @param where the file (or object URL) the record came from
   * @param schemaFound the record's `schema`, undefined when it was not read that far
   */
  constructor(message: string, readonly where: string, readonly schemaFound?: unknown) {
    super(message);
  }
}

/** One field of a record is missing or wrong; the message starts with the field's name. */
export class RecordFieldError extends Error {
  override readonly name = "RecordFieldError";
  constructor(readonly field: string, why: string) {
    super(`${field} ${why}`);
  }
}

/**
 * The fields of a stored JSON object, read one at a time: each reader returns
 * the typed value or throws {@linkcode RecordFieldError} naming the field
 * (with the path of a nested one, e.g. `zerofs.servedBy`).
 */
export class RecordFields {
  constructor(readonly raw: Readonly<Record<string, unknown>>, readonly prefix = "") {}

  /** The field when `ok` accepts it; otherwise throws "`name` <value> is not `what`". */
  check<T>(name: string, ok: (v: unknown) => boolean, what: string): T {
    const v = this.raw[name];
    if (!ok(v)) {
      const why = v === undefined ? "is missing" : `${show(v)} is not ${what}`;
      throw new RecordFieldError(`${this.prefix}${name}`, why);
    }
    return v as T;
  }

  /** A string; `nonEmpty` refuses `""`. */
  string(name: string, opts: { nonEmpty?: boolean } = {}): string {
    const what = opts.nonEmpty ? "a non-empty string" : "a string";
    return this.check(name, (v) => typeof v === "string" && !(opts.nonEmpty && v === ""), what);
  }

  /** A whole number (safe integer). */
  integer(name: string): number {
    return this.check(name, Number.isSafeInteger, "a whole number");
  }

  boolean(name: string): boolean {
    return this.check(name, (v) => typeof v === "boolean", "true or false");
  }

  /** One of `values`. */
  oneOf<V extends string>(name: string, values: readonly V[]): V {
    return this.check(name, (v) => values.includes(v as V), `one of ${values.join(", ")}`);
  }

  /** An ISO 8601 time string. */
  time(name: string): string {
    const ok = (v: unknown) => typeof v === "string" && !Number.isNaN(Date.parse(v));
    return this.check(name, ok, "an ISO 8601 time");
  }

  /** An object whose values are all strings. */
  stringMap(name: string): Record<string, string> {
    return this.check(name, isStringMap, "an object of strings");
  }

  /** An array of strings. */
  stringList(name: string): string[] {
    const ok = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === "string");
    return this.check(name, ok, "a list of strings");
  }

  /** A nested object, read with the same checks (field names get `name.` in front). */
  object(name: string): RecordFields {
    const v = this.check<Record<string, unknown>>(name, isObject, "an object");
    return new RecordFields(v, `${this.prefix}${name}.`);
  }

  /** `read(this, name)` when the field is present, undefined when it is absent. */
  optional<V>(name: string, read: (fields: RecordFields, name: string) => V): V | undefined {
    return this.raw[name] === undefined ? undefined : read(this, name);
  }
}

/** How one record type is defined. */
export interface RecordDefinition<T> {
  /** What the record is, for messages: "node volume state", "ZeroFS process record". */
  kind: string;
  /** The schema this driver writes. */
  schema: number;
  /** Schemas this driver reads (default: only `schema`). */
  readableSchemas?: readonly number[];
  /** What an operator should do about a record that cannot be trusted. */
  remedy: string;
  /**
   * Build the typed value from the fields of a record whose schema is
   * readable (`schema` is that record's). Throw {@linkcode RecordFieldError}
   * (the readers of {@linkcode RecordFields} do) for a bad field. Fields left
   * undefined are dropped, so an absent optional field stays absent.
   */
  validate(fields: RecordFields, schema: number): T;
  /** The error class to throw (a subclass that callers already catch). */
  errorClass?: new (message: string, where: string, schemaFound?: unknown) => CorruptRecordError;
}

/** A defined record type: parse and serialize its stored form. */
export interface RecordFormat<T> {
  readonly kind: string;
  readonly schema: number;
  /**
   * Parse a stored record; `where` names its file in errors. Throws
   * {@linkcode CorruptRecordError} (or the definition's subclass).
   */
  parse(stored: string | Uint8Array, where: string): T;
  /**
   * The stored form: pretty JSON with `schema` first, then the value's own
   * fields in their order. A value that would not read back throws (a bug).
   */
  serialize(value: T): string;
  /** The error for a record that parsed but does not belong where it was found. */
  corrupt(where: string, problem: string, schemaFound?: unknown): CorruptRecordError;
}

/**
 * Define a record type.
 *
 * @example
 * ```ts
 * interface Greeting { text: string }
 * const GREETING = defineRecord<Greeting>({
 *   kind: "greeting", schema: 1, remedy: "remove it",
 *   validate: (f) => ({ text: f.string("text") }),
 * });
 * GREETING.serialize({ text: "hi" }); // '{\n  "schema": 1,\n  "text": "hi"\n}\n'
 * GREETING.parse('{"schema":2}', "/x.json"); // throws CorruptRecordError
 * ```
 */
export function defineRecord<T>(def: RecordDefinition<T>): RecordFormat<T> {
  const readable = def.readableSchemas ?? [def.schema];
  const ErrorClass = def.errorClass ?? CorruptRecordError;
  const corrupt = (where: string, problem: string, schemaFound?: unknown) =>
    new ErrorClass(`${def.kind} ${where} ${problem}; ${def.remedy}`, where, schemaFound);

  function fromObject(value: unknown, where: string): T {
    if (!isObject(value)) throw corrupt(where, "is not a JSON object");
    const schema = value.schema;
    if (!readable.includes(schema as number)) {
      throw corrupt(
        where,
        `has schema ${show(schema)}; this driver reads schema ${readable.join(", ")} ` +
          `(written by another driver version?)`,
        schema,
      );
    }
    try {
      return withoutUndefined(def.validate(new RecordFields(value), schema as number));
    } catch (e) {
      if (!(e instanceof RecordFieldError)) throw e;
      throw corrupt(where, `(schema ${schema}) is invalid: ${e.message}`, schema);
    }
  }

  return {
    kind: def.kind,
    schema: def.schema,
    corrupt,
    parse(stored, where) {
      let value: unknown;
      try {
        const text = typeof stored === "string"
          ? stored
          : new TextDecoder("utf-8", { fatal: true }).decode(stored);
        value = JSON.parse(text);
      } catch (e) {
        throw corrupt(where, `is not valid JSON (${(e as Error).message})`);
      }
      return fromObject(value, where);
    },
    serialize(value) {
      const stamped: Record<string, unknown> = { schema: def.schema, ...value };
      stamped.schema = def.schema; // a value that carries its own schema is written as this one
      try {
        fromObject(stamped, "being written");
      } catch (e) {
        throw new Error(`Cannot write ${def.kind}: ${(e as Error).message}`);
      }
      return JSON.stringify(stamped, null, 2) + "\n";
    },
  };
}

/** The record at `path`, or null when the file does not exist. Anything else wrong throws. */
export async function readRecordFile<T>(format: RecordFormat<T>, path: string): Promise<T | null> {
  const text = await readFileIfExists(path);
  return text === null ? null : format.parse(text, path);
}

/** Replace the record at `path` atomically (temp file 0600, fsync, rename, fsync directory). */
export async function writeRecordFile<T>(
  format: RecordFormat<T>,
  path: string,
  value: T,
): Promise<void> {
  await writeFileAtomic(path, format.serialize(value));
}

function withoutUndefined<T>(value: T): T {
  const out = { ...value } as Record<string, unknown>;
  for (const key of Object.keys(out)) if (out[key] === undefined) delete out[key];
  return out as T;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isStringMap(v: unknown): v is Record<string, string> {
  return isObject(v) && Object.values(v).every((x) => typeof x === "string");
}

function show(v: unknown): string {
  return v === undefined ? "undefined" : JSON.stringify(v);
}
