import { describe, expect, it } from 'vitest';
import { TRACE_FIELDS, TRACE_SCHEMA_VERSION, type TraceRecord } from '../../core/trace-schema.ts';
import { TraceHasher } from '../../cluster/sim/trace-hash.ts';

const H = (c: string) => c.repeat(64);

function record(nodeSeq: number, overrides: Partial<TraceRecord> = {}): TraceRecord {
  return {
    schema_version: TRACE_SCHEMA_VERSION,
    run_id: 'run-1',
    event_id: `run-1/0/${nodeSeq}`,
    node: 0,
    node_seq: nodeSeq,
    protocol: 'pbft',
    phase: 'prepare',
    view: 0,
    seq: 3,
    leader: 0,
    ts_us: 1_767_225_600_000_000 + nodeSeq,
    node_clock_us: 1_767_225_600_000_000 + nodeSeq,
    msgs_sent: 3,
    msgs_received: 1,
    retransmissions: 0,
    batch_size: 1,
    deps_count: 0,
    latency_us: null,
    byzantine_altered: 0,
    state_hash: H('a'),
    shadow_hash: H('a'),
    faults: [],
    faulty_nodes: [],
    recovering: false,
    ...overrides,
  } as TraceRecord;
}

async function hashOf(records: readonly TraceRecord[], batch = records.length): Promise<string> {
  const hasher = new TraceHasher();
  for (let i = 0; i < records.length; i += Math.max(1, batch)) hasher.update(records.slice(i, i + batch));
  return hasher.digest();
}

/** One changed value per field, each applied to the middle record of three. */
const CHANGES: ReadonlyArray<Partial<TraceRecord>> = [
  { schema_version: 3 as typeof TRACE_SCHEMA_VERSION },
  { run_id: 'run-2' },
  { event_id: 'run-1/0/x' },
  { node: 1 },
  { node_seq: 9 },
  { protocol: 'epaxos' },
  { phase: 'commit' },
  { view: 1 },
  { seq: 4 },
  { leader: 1 },
  { ts_us: 1 },
  { node_clock_us: 1 },
  { msgs_sent: 4 },
  { msgs_received: 2 },
  { retransmissions: 1 },
  { batch_size: 2 },
  { deps_count: 1 },
  { latency_us: 0 },
  { byzantine_altered: 1 },
  { state_hash: H('b') },
  { shadow_hash: H('b') },
  { faults: ['drop'] },
  { faults: ['drop', 'crash'] },
  { faulty_nodes: [0] },
  { faulty_nodes: [0, 1] },
  { recovering: true },
];

describe('TraceHasher', () => {
  const base = [record(0), record(1), record(2)];

  it('is reproducible and independent of how records are batched', async () => {
    const whole = await hashOf(base);
    expect(whole).toMatch(/^[0-9a-f]{64}$/);
    expect(await hashOf(base)).toBe(whole);
    expect(await hashOf(base, 1)).toBe(whole);
    expect(await hashOf(base, 2)).toBe(whole);
  });

  it('has a change for every field of the trace table (a new field is hashed, and tested here)', () => {
    const changed = new Set(CHANGES.flatMap((change) => Object.keys(change)));
    expect(TRACE_FIELDS.filter((name) => !changed.has(name))).toEqual([]);
  });

  it('changes when any single field of any record changes', async () => {
    const reference = await hashOf(base);
    const seen = new Set([reference]);
    for (const change of CHANGES) {
      const changed = [record(0), record(1, change), record(2)];
      const hash = await hashOf(changed);
      expect(hash, JSON.stringify(change)).not.toBe(reference);
      seen.add(hash);
    }
    expect(seen.size).toBe(CHANGES.length + 1);
  });

  it('changes with record order and count, and does not confuse field boundaries', async () => {
    const reference = await hashOf(base);
    expect(await hashOf([base[1]!, base[0]!, base[2]!])).not.toBe(reference);
    expect(await hashOf(base.slice(0, 2))).not.toBe(reference);
    expect(await hashOf([record(0, { run_id: 'ab', event_id: 'c' })])).not.toBe(await hashOf([record(0, { run_id: 'a', event_id: 'bc' })]));
    // A back-reference to the previous record's value must not equal writing the value again elsewhere.
    expect(await hashOf([record(0, { shadow_hash: H('b') }), record(1, { shadow_hash: H('b') })])).not.toBe(
      await hashOf([record(0, { shadow_hash: H('b') }), record(1, { shadow_hash: H('a') })]),
    );
  });

  it('hashes non-ASCII strings by their UTF-8 bytes', async () => {
    const accented = await hashOf([record(0, { run_id: 'r\u00e9sum\u00e9' })]);
    expect(accented).not.toBe(await hashOf([record(0, { run_id: 'resume' })]));
    expect(accented).not.toBe(await hashOf([record(0, { run_id: 'r\u00e8sum\u00e9' })]));
    expect(await hashOf([record(0, { run_id: 'r\u00e9sum\u00e9' })])).toBe(accented);
  });

  it('handles records larger than its buffer and many records across flushes', async () => {
    const big = record(0, { run_id: 'x'.repeat(100_000) });
    expect(await hashOf([big, record(1)])).not.toBe(await hashOf([record(0), record(1)]));
    const many = Array.from({ length: 5_000 }, (_, i) => record(i, { state_hash: H(i % 2 === 0 ? 'a' : 'c') }));
    expect(await hashOf(many, 512)).toBe(await hashOf(many, 7));
  });
});
