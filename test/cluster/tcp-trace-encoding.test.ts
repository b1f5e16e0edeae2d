/** The TCP node's fast trace encoding: byte-identical to JSON.stringify, and the eager NDJSON path
 * of TraceBuffer keeps order, bounds and content. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createRng } from '../../core/rng.ts';
import { FAULT_KINDS, TRACE_SCHEMA_VERSION, eventIdOf, TRACE_FIELDS, validateTraceRecord, type TraceRecord } from '../../core/trace-schema.ts';
import { traceRecordJson } from '../../cluster/tcp/trace-json.ts';
import { NdjsonFileSink, TraceBuffer } from '../../cluster/tcp/trace-output.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** Keys in the order node-process.ts builds a record. */
function record(runId: string, nodeSeq: number, over: Partial<TraceRecord> = {}): TraceRecord {
  return {
    schema_version: TRACE_SCHEMA_VERSION,
    run_id: runId,
    event_id: eventIdOf(runId, 3, nodeSeq),
    node: 3,
    node_seq: nodeSeq,
    protocol: 'pbft',
    phase: 'commit',
    view: 2,
    seq: nodeSeq * 7,
    leader: 2,
    ts_us: 1_764_091_800_123_456 + nodeSeq,
    node_clock_us: 1_764_091_800_123_456 + nodeSeq,
    msgs_sent: 3,
    msgs_received: 4,
    retransmissions: 0,
    batch_size: 5,
    deps_count: 0,
    latency_us: null,
    byzantine_altered: 0,
    state_hash: 'a'.repeat(64),
    shadow_hash: 'b'.repeat(64),
    faults: [],
    faulty_nodes: [],
    recovering: false,
    ...over,
  };
}

describe('traceRecordJson', () => {
  it('writes every field of the table, in table order', () => {
    expect(Object.keys(JSON.parse(traceRecordJson(record('r', 0))) as object)).toEqual(TRACE_FIELDS);
  });

  it('equals JSON.stringify on varied records', () => {
    const rng = createRng('trace-json');
    const runIds = ['r', 'tcp-pbft-20261125T173000-abcdef', 'quote"back\\slash', 'ctl\u0001\n\ttab', 'ünïcödé ✓ 😀', '\ud800 lone'];
    for (let i = 0; i < 300; i++) {
      const runId = runIds[i % runIds.length] as string;
      const faults = FAULT_KINDS.filter(() => rng.next() < 0.2);
      const r = record(runId, i, {
        protocol: i % 2 === 0 ? 'pbft' : 'epaxos',
        phase: i % 2 === 0 ? 'prepare' : 'pre_accept',
        latency_us: rng.next() < 0.5 ? null : rng.int(10_000_000),
        deps_count: rng.int(8),
        batch_size: rng.int(64),
        faults,
        faulty_nodes: faults.length > 0 ? [0, 4] : [],
        ts_us: i === 7 ? 2 ** 53 - 1 : 1_764_091_800_000_000 + i,
      });
      expect(traceRecordJson(r)).toBe(JSON.stringify(r));
    }
  });
});

describe('TraceBuffer with an NDJSON file sink (records encoded on arrival)', () => {
  it('writes exactly the JSON.stringify lines, in order, across many chunks', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lattice-tcp-trace-'));
    dirs.push(dir);
    const path = join(dir, 'node-3.ndjson');
    const sink = new NdjsonFileSink(path);
    // Small batches and a long interval: both the size trigger and explicit flushes are used.
    const buffer = new TraceBuffer(sink, { batchRecordsMax: 700, flushIntervalMs: 10_000 });
    const records: TraceRecord[] = [];
    // About 500 bytes per record: 2,000 records cross the 64 KiB chunk size many times.
    for (let i = 0; i < 2000; i++) {
      const r = record(i % 3 === 0 ? 'run-é✓' : 'run', i, { latency_us: i % 5 === 0 ? null : i });
      records.push(r);
      buffer.push(r);
    }
    await buffer.flush();
    await sink.close();
    const expected = records.map((r) => JSON.stringify(r) + '\n').join('');
    expect(readFileSync(path, 'utf8')).toBe(expected);
    expect(buffer.accepted).toBe(2000);
    expect(buffer.dropped).toBe(0);
    const first = readFileSync(path, 'utf8').split('\n')[0] as string;
    expect(validateTraceRecord(JSON.parse(first)).ok).toBe(true);
  });

  it('drops past its bound and counts what it dropped', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lattice-tcp-trace-'));
    dirs.push(dir);
    const path = join(dir, 'node-3.ndjson');
    const sink = new NdjsonFileSink(path);
    const buffer = new TraceBuffer(sink, { batchRecordsMax: 4, bufferedRecordsMax: 10, flushIntervalMs: 5 });
    for (let i = 0; i < 12; i++) buffer.push(record('r', i));
    await buffer.flush();
    await sink.close();
    const seqs = readFileSync(path, 'utf8').trim().split('\n').map((line) => (JSON.parse(line) as TraceRecord).node_seq);
    expect(seqs).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(buffer.dropped).toBe(2);
    expect(buffer.accepted).toBe(10);
  });
});
