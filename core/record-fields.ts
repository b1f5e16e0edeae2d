/**
 * Field tables: one definition per record kind, from which everything that handles the record is
 * derived — the zod validator (and its error messages), the field order of its canonical JSON, the
 * fast "certainly valid?" check of the collector's hot path, the NDJSON encoder, the binary layout
 * the trace hash covers, and the store's column types (checked against the real table by a test).
 * Adding a field is one entry here; every path picks it up.
 *
 * A table is an ordered object of fields (insertion order is the canonical order). Each field has
 * a kind from a small closed set; the kind decides the validation, the JSON rendering and the hash
 * encoding, so those three can never disagree about a field.
 */
import { z } from 'zod';
import { invariant } from './errors.ts';

/** Kinds a field can have. Numbers are JavaScript safe integers; strings must have a UTF-8 form. */
export type FieldKind =
  | { readonly type: 'literal'; readonly value: number }
  | { readonly type: 'uint' }
  | { readonly type: 'node_id' }
  | { readonly type: 'flag' }
  | { readonly type: 'text'; readonly minChars: number; readonly maxChars: number }
  | { readonly type: 'enum'; readonly values: readonly string[] }
  | { readonly type: 'hash' }
  | { readonly type: 'enum_array'; readonly values: readonly string[]; readonly maxItems: number }
  | { readonly type: 'text_array'; readonly maxChars: number; readonly maxItems: number }
  | { readonly type: 'node_array'; readonly maxItems: number }
  | { readonly type: 'uint_array'; readonly maxItems: number };

export interface FieldDef<S extends z.ZodType = z.ZodType> {
  readonly kind: FieldKind;
  readonly nullable: boolean;
  /** The ClickHouse column type that holds the field unchanged. */
  readonly column: string;
  /** What the field means (docs/records.md is generated from it). */
  readonly doc: string;
  readonly schema: S;
}

export type FieldTable = Readonly<Record<string, FieldDef>>;

/** The record type a table describes. */
export type RecordOf<T extends FieldTable> = { [K in keyof T]: z.infer<T[K]['schema']> };

/** The largest node id: node ids are UInt16 in the store. */
export const NODE_ID_MAX = 65535;
const HASH_HEX = /^[0-9a-f]{64}$/;

const wellFormed = (schema: z.ZodString) => schema.refine((s) => s.isWellFormed(), 'contains a lone UTF-16 surrogate, which has no UTF-8 encoding');
const uintSchema = (name: string) => z.number({ error: `${name}: expected a number` }).int(`${name}: expected an integer`).nonnegative(`${name}: expected >= 0`).max(Number.MAX_SAFE_INTEGER, `${name}: expected at most 2^53 - 1`);
const nodeIdSchema = () =>
  z.number({ error: `expected a node id (integer 0..${NODE_ID_MAX})` }).int('expected an integer node id').min(0, 'expected a node id >= 0').max(NODE_ID_MAX, `expected a node id <= ${NODE_ID_MAX}`);

/** Builders for table entries; `name` only shapes error messages. */
export const field = {
  literal: <V extends number>(value: V, column: string, doc: string): FieldDef<z.ZodLiteral<V>> => ({
    kind: { type: 'literal', value },
    nullable: false,
    column,
    doc,
    schema: z.literal(value, { error: `expected ${value}` }),
  }),
  uint: (name: string, column: string, doc: string): FieldDef<z.ZodNumber> => ({ kind: { type: 'uint' }, nullable: false, column, doc, schema: uintSchema(name) }),
  nullableUint: (name: string, column: string, doc: string): FieldDef<z.ZodNullable<z.ZodNumber>> => ({
    kind: { type: 'uint' },
    nullable: true,
    column: `Nullable(${column})`,
    doc,
    schema: uintSchema(name).nullable(),
  }),
  nodeId: (doc: string): FieldDef<z.ZodNumber> => ({ kind: { type: 'node_id' }, nullable: false, column: 'UInt16', doc, schema: nodeIdSchema() }),
  flag: (doc: string): FieldDef<z.ZodBoolean> => ({ kind: { type: 'flag' }, nullable: false, column: 'Bool', doc, schema: z.boolean({ error: 'expected true or false' }) }),
  text: (minChars: number, maxChars: number, column: string, doc: string): FieldDef<z.ZodString> => ({
    kind: { type: 'text', minChars, maxChars },
    nullable: false,
    column,
    doc,
    schema: wellFormed(
      z
        .string({ error: 'expected a string' })
        .min(minChars, minChars === 1 ? 'must not be empty' : `must be at least ${minChars} characters`)
        .max(maxChars, `must be at most ${maxChars} characters`),
    ) as unknown as z.ZodString,
  }),
  enumOf: <const V extends readonly [string, ...string[]]>(values: V, doc: string): FieldDef<z.ZodEnum<{ [K in V[number]]: K }>> => ({
    kind: { type: 'enum', values },
    nullable: false,
    column: 'LowCardinality(String)',
    doc,
    schema: z.enum(values, { error: `expected one of ${values.join(', ')}` }) as unknown as z.ZodEnum<{ [K in V[number]]: K }>,
  }),
  /** A string checked by a rule the record's own refinement states (e.g. a phase per protocol). */
  looseEnum: (values: readonly string[], doc: string): FieldDef<z.ZodString> => ({
    kind: { type: 'enum', values },
    nullable: false,
    column: 'LowCardinality(String)',
    doc,
    schema: z.string({ error: 'expected a string' }),
  }),
  hash: (doc: string): FieldDef<z.ZodString> => ({
    kind: { type: 'hash' },
    nullable: false,
    column: 'FixedString(64)',
    doc,
    schema: z.string({ error: 'expected a string' }).regex(HASH_HEX, 'expected 64 lowercase hex characters (BLAKE3-256)'),
  }),
  enumArray: <const V extends readonly [string, ...string[]]>(values: V, maxItems: number, doc: string): FieldDef<z.ZodArray<z.ZodEnum<{ [K in V[number]]: K }>>> => ({
    kind: { type: 'enum_array', values, maxItems },
    nullable: false,
    column: 'Array(LowCardinality(String))',
    doc,
    schema: z
      .array(z.enum(values, { error: `expected one of ${values.join(', ')}` }), { error: 'expected an array' })
      .max(maxItems, `at most ${maxItems} items`) as unknown as z.ZodArray<z.ZodEnum<{ [K in V[number]]: K }>>,
  }),
  textArray: (maxChars: number, maxItems: number, doc: string): FieldDef<z.ZodArray<z.ZodString>> => ({
    kind: { type: 'text_array', maxChars, maxItems },
    nullable: false,
    column: 'Array(LowCardinality(String))',
    doc,
    schema: z
      .array(wellFormed(z.string({ error: 'expected a string' }).max(maxChars, `must be at most ${maxChars} characters`)) as unknown as z.ZodString, { error: 'expected an array of strings' })
      .max(maxItems, `at most ${maxItems} items`),
  }),
  nodeArray: (maxItems: number, doc: string): FieldDef<z.ZodArray<z.ZodNumber>> => ({
    kind: { type: 'node_array', maxItems },
    nullable: false,
    column: 'Array(UInt16)',
    doc,
    schema: z.array(nodeIdSchema(), { error: 'expected an array of node ids' }).max(maxItems, `at most ${maxItems} items`),
  }),
  uintArray: (name: string, maxItems: number, doc: string): FieldDef<z.ZodArray<z.ZodNumber>> => ({
    kind: { type: 'uint_array', maxItems },
    nullable: false,
    column: 'Array(UInt64)',
    doc,
    schema: z.array(uintSchema(name), { error: 'expected an array of integers' }).max(maxItems, `at most ${maxItems} items`),
  }),
};

/** The table's fields as a strict zod object (unknown fields are errors), in table order. */
export function zodObjectOf<T extends FieldTable>(table: T): z.ZodObject<{ [K in keyof T]: T[K]['schema'] }, z.core.$strict> {
  const shape: Record<string, z.ZodType> = {};
  for (const [name, def] of Object.entries(table)) shape[name] = def.schema;
  return z.object(shape).strict() as unknown as z.ZodObject<{ [K in keyof T]: T[K]['schema'] }, z.core.$strict>;
}

export function fieldNamesOf<T extends FieldTable>(table: T): readonly (keyof T & string)[] {
  return Object.freeze(Object.keys(table)) as readonly (keyof T & string)[];
}

/** `name Type` per field, in table order: what the store's table must hold (test/core checks it). */
export function columnsOf(table: FieldTable): ReadonlyArray<readonly [string, string]> {
  return Object.entries(table).map(([name, def]) => [name, def.column] as const);
}

/** A markdown table of the fields (docs/records.md holds one per kind; a test checks they match). */
export function fieldDocTable(table: FieldTable): string {
  const kindOf = (def: FieldDef): string => {
    const k = def.kind;
    const base = k.type === 'enum' ? `one of ${k.values.join(', ')}` : k.type === 'enum_array' ? `array of ${k.values.length > 4 ? 'fault kinds' : k.values.join(', ')}` : k.type === 'literal' ? `= ${k.value}` : k.type.replaceAll('_', ' ');
    return def.nullable ? `${base} or null` : base;
  };
  const rows = Object.entries(table).map(([name, def]) => `| \`${name}\` | ${kindOf(def)} | ${def.column} | ${def.doc.replaceAll('|', '\\|')} |`);
  return ['| field | kind | column | meaning |', '|---|---|---|---|', ...rows].join('\n');
}

// ---- the fast check -------------------------------------------------------------------------

const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isNodeId = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= NODE_ID_MAX;

/** One predicate per field, answering "certainly valid?" (sound, not complete: zod decides the rest). */
export function fastPredicateOf(def: FieldDef): (value: unknown) => boolean {
  const base = basePredicate(def.kind);
  return def.nullable ? (v) => v === null || base(v) : base;
}

function basePredicate(kind: FieldKind): (value: unknown) => boolean {
  switch (kind.type) {
    case 'literal':
      return (v) => v === kind.value;
    case 'uint':
      return isUint;
    case 'node_id':
      return isNodeId;
    case 'flag':
      return (v) => typeof v === 'boolean';
    case 'text':
      return (v) => typeof v === 'string' && v.length >= kind.minChars && v.length <= kind.maxChars && v.isWellFormed();
    case 'enum': {
      const allowed: ReadonlySet<string> = new Set(kind.values);
      return (v) => typeof v === 'string' && allowed.has(v);
    }
    case 'hash': {
      // Records of one run mostly repeat the same hashes; a string equal to the last one matched
      // needs no second regex run (a 64-byte compare is several times cheaper).
      let last = '';
      return (v) => {
        if (typeof v !== 'string' || v.length !== 64) return false;
        if (v === last) return true;
        if (!HASH_HEX.test(v)) return false;
        last = v;
        return true;
      };
    }
    case 'enum_array': {
      const allowed: ReadonlySet<string> = new Set(kind.values);
      return (v) => Array.isArray(v) && v.length <= kind.maxItems && v.every((item) => typeof item === 'string' && allowed.has(item));
    }
    case 'text_array':
      return (v) => Array.isArray(v) && v.length <= kind.maxItems && v.every((item) => typeof item === 'string' && item.length <= kind.maxChars && item.isWellFormed());
    case 'node_array':
      return (v) => Array.isArray(v) && v.length <= kind.maxItems && v.every(isNodeId);
    case 'uint_array':
      return (v) => Array.isArray(v) && v.length <= kind.maxItems && v.every(isUint);
  }
}

/**
 * Exactly the table's fields, all own and enumerable. Records mostly come in field order (every
 * producer serialises the same object shape), which is checked by plain comparison; for-in lists
 * own keys before inherited ones, so when the last of exactly N keys is own, all of them are.
 * Any other order takes the set lookup.
 */
export function exactFieldsCheckOf(table: FieldTable): (record: Record<string, unknown>) => boolean {
  const names = Object.keys(table);
  const nameSet: ReadonlySet<string> = new Set(names);
  const last = names[names.length - 1]!;
  return (r) => {
    let i = 0;
    let inOrder = true;
    for (const key in r) {
      if (inOrder && key === names[i]) {
        i++;
        continue;
      }
      inOrder = false;
      if (!nameSet.has(key) || !Object.hasOwn(r, key)) return false;
      i++;
    }
    if (i !== names.length) return false;
    return inOrder ? Object.hasOwn(r, last) : true;
  };
}

/** Field names go into compiled code (`r.${name}`): each must be a plain lowercase identifier. */
export function assertPlainNames(names: readonly string[]): void {
  for (const name of names) invariant(/^[a-z_][a-z0-9_]*$/.test(name), `field name ${name} is not a plain identifier`);
}

/** Fields present exactly, and each certainly valid on its own (cross-field rules are the caller's). */
export function fastCheckOf(table: FieldTable): (value: unknown) => boolean {
  const exact = exactFieldsCheckOf(table);
  const names = Object.keys(table);
  const checks = Object.values(table).map(fastPredicateOf);
  // Compiled once into straight property loads, as for the trace hash: a loop of keyed loads
  // costs about twice as much per record, and this runs for every record the collector reads.
  assertPlainNames(names);
  const body = names.map((name, i) => `if (!checks[${i}](r.${name})) return false;`).join('\n') + '\nreturn true;';
  const fields = new Function('checks', 'r', body) as (checks: readonly ((v: unknown) => boolean)[], r: Record<string, unknown>) => boolean;
  return (value) => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
    const r = value as Record<string, unknown>;
    return exact(r) && fields(checks, r);
  };
}

// ---- the JSON encoder -----------------------------------------------------------------------

/**
 * A record as one line of JSON, fields in table order: exactly what JSON.stringify gives for a
 * record built in that order (test/core/record-fields.test.ts checks it), without walking the
 * record as an unknown object. Numbers are written with String (JSON's rendering of a finite
 * number); strings and arrays go through JSON.stringify, which escapes them.
 */
export function jsonEncoderOf<T extends FieldTable>(table: T): (record: RecordOf<T>) => string {
  const writers = Object.entries(table).map(([name, def], i) => {
    const prefix = `${i === 0 ? '{' : ','}${JSON.stringify(name)}:`;
    const write = valueWriter(def);
    return (r: Record<string, unknown>) => prefix + write(r[name]);
  });
  return (record) => {
    const r = record as Record<string, unknown>;
    let out = '';
    for (const write of writers) out += write(r);
    return `${out}}`;
  };
}

function valueWriter(def: FieldDef): (value: unknown) => string {
  switch (def.kind.type) {
    case 'literal':
    case 'uint':
    case 'node_id':
      // JSON has no NaN or infinities: JSON.stringify writes null, and so does this.
      return (v) => (typeof v === 'number' && Number.isFinite(v) ? String(v) : 'null');
    case 'flag':
      return (v) => (v === true ? 'true' : v === false ? 'false' : JSON.stringify(v ?? null));
    case 'enum_array':
    case 'text_array':
    case 'node_array':
    case 'uint_array':
      return (v) => (Array.isArray(v) && v.length === 0 ? '[]' : JSON.stringify(v ?? null));
    default:
      return (v) => JSON.stringify(v ?? null);
  }
}
