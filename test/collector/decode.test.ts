import { describe, expect, it } from 'vitest';
import { deadLetterMessage, deadLetterOf, parseDeadLetter } from '../../collector/dead-letter.ts';
import { decodeMessage, decodeMessageFast, decodeRecord } from '../../collector/decode.ts';
import { isCertainlyValidRecord } from '../../collector/fast-validate.ts';
import { createRng } from '../../core/rng.ts';
import { validateTraceRecord } from '../../core/trace-schema.ts';
import { makeRecord } from '../support/records.ts';

const MAX = 64 * 1024;
const bytes = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v));

describe('decodeRecord', () => {
  it('accepts a valid record and keeps its original bytes as the row', () => {
    const value = bytes(makeRecord({ faults: ['crash'], faulty_nodes: [1] }));
    const decoded = decodeRecord(value, MAX);
    expect(decoded.ok).toBe(true);
    if (decoded.ok && decoded.kind === 'transition') expect(decoded.row).toBe(value);
  });

  it('re-encodes a valid pretty-printed record onto one line', () => {
    const decoded = decodeRecord(Buffer.from(JSON.stringify(makeRecord(), null, 2)), MAX);
    expect(decoded.ok && decoded.kind === 'transition' && decoded.row.includes(0x0a)).toBe(false);
    expect(decoded.ok && decoded.kind === 'transition' && JSON.parse(decoded.row.toString())).toEqual(makeRecord());
  });

  const cases: [string, Buffer, string, string?][] = [
    ['truncated JSON', bytes(JSON.stringify(makeRecord()).slice(0, 40)), 'malformed_json'],
    ['empty message', Buffer.alloc(0), 'malformed_json'],
    ['wrong type', bytes({ ...makeRecord(), node: 'zero' }), 'schema_invalid', 'node'],
    ['missing field', bytes((({ ts_us: _t, ...rest }) => rest)(makeRecord())), 'schema_invalid', 'ts_us'],
    ['unknown protocol', bytes({ ...makeRecord(), protocol: 'raft' }), 'schema_invalid', 'protocol'],
    ['phase of the other protocol', bytes({ ...makeRecord(), phase: 'pre_accept' }), 'schema_invalid', 'phase'],
    ['unknown field', bytes({ ...makeRecord(), extra: 1 }), 'schema_invalid', 'extra'],
    ['not an object', bytes([1, 2, 3]), 'schema_invalid'],
    ['oversized', bytes({ ...makeRecord(), run_id: 'x'.repeat(MAX) }), 'oversized'],
  ];
  for (const [label, value, reason, path] of cases) {
    it(`rejects ${label} as ${reason}`, () => {
      const decoded = decodeRecord(value, MAX);
      expect(decoded.ok).toBe(false);
      if (decoded.ok) return;
      expect(decoded.reason).toBe(reason);
      expect(decoded.errors.length).toBeGreaterThan(0);
      if (path) expect(decoded.errors.map((e) => e.path).join(' ')).toContain(path);
    });
  }

  it('builds a dead letter that keeps the exact bytes and reads back from its message', () => {
    const value = Buffer.from([0xff, 0x00, 0x0a, 0xfe, 0x7b]);
    const letter = deadLetterOf({ topic: 't', partition: 2, offset: '41', key: 'k', value, headers: {} }, 'invalid_utf8', [{ path: '', message: 'bad' }], { nowMs: 5 });
    expect(letter.source).toEqual({ topic: 't', partition: 2, offset: '41', key: 'k', index: 0 });
    const message = deadLetterMessage(letter);
    const back = parseDeadLetter({ topic: 'dlq', partition: 0, offset: '0', key: message.key, value: message.value as Buffer, headers: message.headers ?? {} });
    expect(back).toEqual(letter);
    expect(Buffer.compare(back!.value, value)).toBe(0);
  });
});

describe('decodeMessage', () => {
  it('reads a bundle of NDJSON records line by line; a bad line does not sink the others', () => {
    const a = JSON.stringify(makeRecord({ node_seq: 0 }));
    const b = JSON.stringify(makeRecord({ node_seq: 1 }));
    const decoded = decodeMessage(Buffer.from(`${a}\n{"broken\n${b}\n`), MAX);
    expect(decoded.map((d) => [d.index, d.ok])).toEqual([[0, true], [1, false], [2, true]]);
    expect(decoded[1]!.ok ? '' : decoded[1]!.reason).toBe('malformed_json');
    expect(decoded[1]!.bytes.toString()).toBe('{"broken');
    expect(decoded[2]!.ok && decoded[2]!.kind === 'transition' && decoded[2]!.row.toString()).toBe(b);
  });

  it('reads a single record, with or without a trailing newline, and a pretty-printed one', () => {
    expect(decodeMessage(bytes(makeRecord()), MAX).map((d) => d.ok)).toEqual([true]);
    expect(decodeMessage(Buffer.from(JSON.stringify(makeRecord()) + '\n'), MAX).map((d) => d.ok)).toEqual([true]);
    expect(decodeMessage(Buffer.from(JSON.stringify(makeRecord(), null, 2)), MAX).map((d) => d.ok)).toEqual([true]);
  });
});

describe('decodeMessageFast', () => {
  it('returns the records and the message as one NDJSON text block, trailing newlines cut', () => {
    const a = JSON.stringify(makeRecord({ node_seq: 0 }));
    const b = JSON.stringify(makeRecord({ node_seq: 1 }));
    const fast = decodeMessageFast(Buffer.from(`${a}\n${b}\n\n`), MAX);
    expect(fast?.block).toBe(`${a}\n${b}`);
    expect(fast?.records).toEqual([makeRecord({ node_seq: 0 }), makeRecord({ node_seq: 1 })]);
  });

  it('leaves anything unusual to decodeMessage: a bad line, a blank line, a pretty-printed record, an oversized message', () => {
    const a = JSON.stringify(makeRecord({ node_seq: 0 }));
    expect(decodeMessageFast(Buffer.from(`${a}\n{"broken`), MAX)).toBeUndefined();
    expect(decodeMessageFast(Buffer.from(`${a}\n\n${a}`), MAX)).toBeUndefined();
    expect(decodeMessageFast(Buffer.from(JSON.stringify(makeRecord(), null, 2)), MAX)).toBeUndefined();
    expect(decodeMessageFast(Buffer.from(JSON.stringify({ ...makeRecord(), node: 'zero' })), MAX)).toBeUndefined();
    expect(decodeMessageFast(Buffer.from(a), a.length - 1)).toBeUndefined();
  });
});

describe('fast validation is sound: it never accepts what the schema rejects', () => {
  it('agrees with zod on valid records and on thousands of mutations', () => {
    const rng = createRng('fast-validate');
    const odd: unknown[] = [-1, 1.5, '1', null, undefined, true, [], {}, 70_000, 2 ** 60, Number.NaN, 'pbft', 'commit', 'crash', 'g'.repeat(64), 'x'.repeat(300), ''];
    const base = makeRecord({ node: 3, node_seq: 7, faults: ['crash', 'drop'], faulty_nodes: [1, 2] }) as unknown as Record<string, unknown>;
    const keys = [...Object.keys(base), 'extra'];
    let accepted = 0;
    expect(isCertainlyValidRecord(base)).toBe(true);
    for (let i = 0; i < 5_000; i++) {
      const mutated: Record<string, unknown> = { ...base };
      const key = keys[rng.int(keys.length)]!;
      const choice = rng.int(odd.length + 2);
      if (choice === odd.length) delete mutated[key];
      else if (choice === odd.length + 1) mutated[key] = Array.isArray(base[key]) ? [odd[rng.int(odd.length)]] : base[key];
      else mutated[key] = odd[choice];
      const shown = `${key}=${String(mutated[key])}`;
      if (isCertainlyValidRecord(mutated)) {
        accepted++;
        expect(validateTraceRecord(mutated).ok, shown).toBe(true);
      }
    }
    expect(accepted).toBeGreaterThan(0);
  });

  it('accepts the fields in any order, as the schema does', () => {
    const rng = createRng('fast-validate-order');
    const base = makeRecord({ node: 2, node_seq: 9, faults: ['crash'], faulty_nodes: [2] }) as unknown as Record<string, unknown>;
    for (let i = 0; i < 50; i++) {
      const keys = Object.keys(base);
      for (let k = keys.length - 1; k > 0; k--) {
        const j = rng.int(k + 1);
        [keys[k], keys[j]] = [keys[j]!, keys[k]!];
      }
      const shuffled = Object.fromEntries(keys.map((k) => [k, base[k]]));
      expect(isCertainlyValidRecord(shuffled)).toBe(true);
      expect(validateTraceRecord(shuffled).ok).toBe(true);
    }
  });

  it('never takes an inherited field for an own one, in order or not', () => {
    const base = makeRecord() as unknown as Record<string, unknown>;
    for (const missing of ['faulty_nodes', 'ts_us', 'schema_version']) {
      const proto = { [missing]: base[missing] };
      const own = Object.fromEntries(Object.entries(base).filter(([k]) => k !== missing));
      const record = Object.assign(Object.create(proto) as Record<string, unknown>, own);
      expect(isCertainlyValidRecord(record), missing).toBe(false);
    }
  });

  it('checks every hash, even right after an accepted one', () => {
    const good = makeRecord({ state_hash: 'c'.repeat(64) });
    expect(isCertainlyValidRecord(good)).toBe(true);
    expect(isCertainlyValidRecord({ ...good, state_hash: 'C'.repeat(64) })).toBe(false);
    expect(isCertainlyValidRecord({ ...good, shadow_hash: 'c'.repeat(63) + 'g' })).toBe(false);
    expect(isCertainlyValidRecord({ ...good, shadow_hash: 'c'.repeat(65) })).toBe(false);
  });
});
