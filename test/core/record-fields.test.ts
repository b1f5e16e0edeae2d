/**
 * The field tables are the one definition of each record kind: what is derived from them (the
 * canonical JSON encoder, the fast checks, the zod schema) must agree with each other on every
 * field, for both kinds. The store's columns are checked against the tables in the store contract.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createRng, type Rng } from '../../core/rng.ts';
import { columnsOf, fastPredicateOf, fieldDocTable, jsonEncoderOf, type FieldDef, type FieldTable } from '../../core/record-fields.ts';
import { SNAPSHOT_FIELD_TABLE, SNAPSHOT_FIELDS, snapshotJson, validateMetricsSnapshot } from '../../core/metrics-snapshot.ts';
import { canonicalRecordJson, TRACE_FIELD_TABLE, TRACE_FIELDS, validateTraceRecord } from '../../core/trace-schema.ts';
import { makeRecord } from '../support/records.ts';
import { makeSnapshot } from '../support/snapshots.ts';

/** A random value a field accepts (strings include escapes, non-ASCII and astral characters). */
function valueFor(def: FieldDef, rng: Rng): unknown {
  const texts = ['r', 'quote"back\\slash', 'ctl\u0001\n\ttab', 'ünïcödé ✓ 😀', 'x'.repeat(40)];
  const kind = def.kind;
  if (def.nullable && rng.next() < 0.3) return null;
  switch (kind.type) {
    case 'literal':
      return kind.value;
    case 'uint':
      return rng.next() < 0.1 ? Number.MAX_SAFE_INTEGER : rng.int(1_000_000);
    case 'node_id':
      return rng.int(65_536);
    case 'flag':
      return rng.next() < 0.5;
    case 'text':
      return texts[rng.int(texts.length)]!.slice(0, kind.maxChars);
    case 'enum':
      return kind.values[rng.int(kind.values.length)];
    case 'hash':
      return rng.next() < 0.5 ? 'a'.repeat(64) : '0123456789abcdef'.repeat(4);
    case 'enum_array':
      return kind.values.filter(() => rng.next() < 0.2);
    case 'text_array':
      return texts.filter(() => rng.next() < 0.3);
    case 'node_array':
    case 'uint_array':
      return Array.from({ length: rng.int(5) }, () => rng.int(1000));
  }
}

function randomRecord(table: FieldTable, rng: Rng): Record<string, unknown> {
  return Object.fromEntries(Object.entries(table).map(([name, def]) => [name, valueFor(def, rng)]));
}

describe.each([
  ['trace record', TRACE_FIELD_TABLE],
  ['metrics snapshot', SNAPSHOT_FIELD_TABLE],
] as const)('the %s field table', (_name, table: FieldTable) => {
  it('encodes exactly what JSON.stringify gives, fields in table order', () => {
    const encode = jsonEncoderOf(table);
    const rng = createRng(`encode/${_name}`);
    for (let i = 0; i < 500; i++) {
      const record = randomRecord(table, rng);
      expect(encode(record as never)).toBe(JSON.stringify(record));
    }
  });

  it('has a fast check per field that never accepts what the field schema rejects', () => {
    const rng = createRng(`fast/${_name}`);
    const odd: unknown[] = [-1, 1.5, '1', null, undefined, true, [], {}, 70_000, 2 ** 60, Number.NaN, 'pbft', 'crash', 'g'.repeat(64), 'x'.repeat(300), '', ['\ud800'], [-1], [1.5]];
    for (const [name, def] of Object.entries(table)) {
      const fast = fastPredicateOf(def);
      for (let i = 0; i < 60; i++) {
        const value = rng.next() < 0.5 ? valueFor(def, rng) : odd[rng.int(odd.length)];
        if (fast(value)) expect(def.schema.safeParse(value).success, `${name}=${JSON.stringify(value)}`).toBe(true);
      }
    }
  });

  it('names a store column type for every field', () => {
    const columns = columnsOf(table);
    expect(columns.map(([name]) => name)).toEqual(Object.keys(table));
    for (const [name, type] of columns) expect(type, name).toMatch(/^[A-Za-z0-9(), ']+$/);
  });
});

describe('derived definitions', () => {
  it('order the canonical JSON of each kind by its table', () => {
    expect(Object.keys(JSON.parse(canonicalRecordJson(makeRecord())) as object)).toEqual(TRACE_FIELDS);
    expect(Object.keys(JSON.parse(snapshotJson(makeSnapshot())) as object)).toEqual(SNAPSHOT_FIELDS);
  });

  it('validate both kinds from their tables (a valid fixture of each passes)', () => {
    expect(validateTraceRecord(makeRecord()).ok).toBe(true);
    expect(validateMetricsSnapshot(makeSnapshot())).toEqual({ ok: true, value: makeSnapshot() });
  });
});

describe('docs/records.md', () => {
  const doc = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '../../docs/records.md'), 'utf8');
  const section = (name: string) => {
    const begin = `<!-- fields:${name} -->\n`;
    const from = doc.indexOf(begin);
    expect(from, `docs/records.md has a ${name} section`).toBeGreaterThanOrEqual(0);
    return doc.slice(from + begin.length, doc.indexOf(`\n<!-- /fields:${name} -->`));
  };
  it('lists every field of each kind exactly as its table defines it', () => {
    expect(section('trace')).toBe(fieldDocTable(TRACE_FIELD_TABLE));
    expect(section('snapshot')).toBe(fieldDocTable(SNAPSHOT_FIELD_TABLE));
  });
});
