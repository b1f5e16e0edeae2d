import { describe, expect, it } from 'vitest';
import { validateTraceRecord } from '../../core/trace-schema.ts';
import { makeRecord } from '../support/records.ts';

function errorsFor(input: unknown) {
  const result = validateTraceRecord(input);
  if (result.ok) throw new Error('expected the record to be rejected');
  return result.errors;
}

describe('trace record validator', () => {
  it('accepts a valid record and returns it', () => {
    const record = makeRecord();
    const result = validateTraceRecord(record);
    expect(result).toEqual({ ok: true, value: record });
  });

  it('accepts a null latency and fault labels', () => {
    expect(validateTraceRecord(makeRecord({ latency_us: null, faults: ['crash', 'partition'], faulty_nodes: [1, 2] })).ok).toBe(true);
  });

  // One bad value per field: each must be named in the errors with a message that says why.
  const badValues: Array<[string, unknown, RegExp]> = [
    ['schema_version', 1, /expected 2/],
    ['byzantine_altered', -1, />= 0/],
    ['recovering', 0, /true or false/],
    ['run_id', '', /empty/],
    ['run_id', 'x'.repeat(129), /at most 128/],
    ['event_id', 'other', /run_id\/node\/node_seq/],
    ['node', -1, />= 0/],
    ['node', 1.5, /integer/],
    ['node', 70000, /<= 65535/],
    ['node_seq', 'seven', /expected a number/],
    ['protocol', 'raft', /pbft, epaxos/],
    ['phase', 'pre_accept', /for protocol pbft/],
    ['view', -3, />= 0/],
    ['seq', 2.5, /integer/],
    ['leader', 'primary', /node id/],
    ['ts_us', null, /expected a number/],
    ['node_clock_us', -1, />= 0/],
    ['msgs_sent', -1, />= 0/],
    ['msgs_received', 0.5, /integer/],
    ['retransmissions', '1', /expected a number/],
    ['batch_size', -2, />= 0/],
    ['deps_count', {}, /expected a number/],
    ['latency_us', -5, />= 0/],
    ['state_hash', 'abc', /64 lowercase hex/],
    ['shadow_hash', 'G'.repeat(64), /64 lowercase hex/],
    ['faults', ['meteor'], /crash, partition/],
    ['faults', 'crash', /expected an array/],
    ['faulty_nodes', [-1], />= 0/],
  ];
  it.each(badValues)('rejects a bad %s (%j) naming the field', (field, value, message) => {
    const errors = errorsFor({ ...makeRecord(), [field]: value });
    const forField = errors.filter((e) => e.path === field || e.path.startsWith(`${field}.`));
    expect(forField.length, JSON.stringify(errors)).toBeGreaterThan(0);
    expect(forField.map((e) => e.message).join(' | ')).toMatch(message);
  });

  it('reports a missing field as required', () => {
    const { node: _node, ...rest } = makeRecord();
    expect(errorsFor(rest)).toContainEqual({ path: 'node', message: 'is required' });
  });

  it('reports unknown fields by name', () => {
    const errors = errorsFor({ ...makeRecord(), colour: 'blue' });
    expect(errors.some((e) => e.message.includes('colour'))).toBe(true);
  });

  it('reports every problem at once, not only the first', () => {
    const errors = errorsFor({ ...makeRecord(), node: -1, protocol: 'raft', state_hash: 'x' });
    expect(new Set(errors.map((e) => e.path))).toEqual(new Set(['node', 'protocol', 'state_hash']));
  });

  it('rejects values that are not objects', () => {
    expect(errorsFor('a string')[0]?.message).toBeTruthy();
    expect(errorsFor(null).length).toBeGreaterThan(0);
  });
});
