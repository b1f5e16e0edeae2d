/**
 * A node's TraceBuffer never loses a record without saying so: drops past its bound become one
 * `buffer_full` gap per contiguous run, a write the sink fails becomes `sink_failed` gaps, and the
 * gaps reach the sink in order with the records (through `writeGap`, or as NDJSON lines).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NdjsonFileSink, TraceBuffer, type GapTraceSink, type ObservableTraceSink, type TraceSinkStats } from '../../cluster/tcp/trace-output.ts';
import { validateGapRecord, type GapRecord } from '../../core/gap-record.ts';
import type { TraceRecord } from '../../core/trace-schema.ts';
import { makeRecords } from '../support/records.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

type Item = { kind: 'record'; seq: number } | { kind: 'gap'; gap: GapRecord };

/** A sink that takes records and gaps, slowly (each write waits for `release`), or fails when told. */
class SlowSink implements GapTraceSink, ObservableTraceSink {
  readonly items: Item[] = [];
  failNext = 0;
  private gates: (() => void)[] = [];
  gated = true;

  async write(records: readonly TraceRecord[]): Promise<void> {
    if (this.gated) await new Promise<void>((resolve) => this.gates.push(resolve));
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('sink down');
    }
    for (const r of records) this.items.push({ kind: 'record', seq: r.node_seq });
  }

  async writeSnapshots(): Promise<void> {}

  async writeGap(gap: GapRecord): Promise<void> {
    expect(validateGapRecord(gap).ok).toBe(true);
    this.items.push({ kind: 'gap', gap });
  }

  release(): void {
    for (const open of this.gates.splice(0)) open();
  }

  traceStats(): TraceSinkStats {
    return { recordsSpooled: 7, recordsReplayed: 5, recordsDropped: 3, gapsDeclared: 1, spoolBytes: 4096 };
  }
}

/** Positions 0..n-1 each covered exactly once, in order, by records and gaps. */
function covered(items: readonly Item[], n: number): void {
  let next = 0;
  for (const item of items) {
    if (item.kind === 'record') {
      expect(item.seq).toBe(next);
      next++;
    } else {
      expect(item.gap.node_seq_first).toBe(next);
      next = item.gap.node_seq_last + 1;
    }
  }
  expect(next).toBe(n);
}

describe('TraceBuffer gaps', () => {
  it('turns a run of drops into one buffer_full gap, placed between the records around it', async () => {
    const sink = new SlowSink();
    const buffer = new TraceBuffer(sink, { batchRecordsMax: 10, bufferedRecordsMax: 20, flushIntervalMs: 1 });
    const records = makeRecords('run-g', 100, 1);
    // The sink holds its first write: the buffer fills and drops 20..59.
    for (const r of records.slice(0, 60)) buffer.push(r);
    expect(buffer.dropped).toBe(40);
    sink.gated = false;
    sink.release();
    await buffer.flush();
    for (let i = 60; i < 100; i += 10) {
      for (const r of records.slice(i, i + 10)) buffer.push(r);
      await buffer.flush();
    }
    await buffer.close();
    covered(sink.items, 100);
    const gaps = sink.items.filter((i): i is { kind: 'gap'; gap: GapRecord } => i.kind === 'gap').map((i) => i.gap);
    expect(gaps.map((g) => [g.node_seq_first, g.node_seq_last, g.records, g.reason, g.gap_id])).toEqual([[20, 59, 40, 'buffer_full', 'run-g/0/gap/20']]);
    expect(buffer.gaps).toBe(1);
  });

  it('declares a run of drops still open at close', async () => {
    const sink = new SlowSink();
    const buffer = new TraceBuffer(sink, { batchRecordsMax: 5, bufferedRecordsMax: 5, flushIntervalMs: 1 });
    for (const r of makeRecords('run-open', 12, 1)) buffer.push(r);
    sink.gated = false;
    sink.release();
    await buffer.close();
    covered(sink.items, 12);
    expect(sink.items.at(-1)).toMatchObject({ kind: 'gap', gap: { node_seq_first: 5, node_seq_last: 11, reason: 'buffer_full' } });
  });

  it('a write the sink fails becomes sink_failed gaps, delivered before the next records', async () => {
    const sink = new SlowSink();
    sink.gated = false;
    sink.failNext = 1;
    const errors: unknown[] = [];
    const buffer = new TraceBuffer(sink, { batchRecordsMax: 10, flushIntervalMs: 1, onError: (e) => errors.push(e) });
    const records = makeRecords('run-fail', 30, 1);
    for (const r of records.slice(0, 10)) buffer.push(r);
    await buffer.flush();
    for (const r of records.slice(10)) buffer.push(r);
    await buffer.close();
    expect(errors.length).toBe(1);
    covered(sink.items, 30);
    expect(sink.items[0]).toMatchObject({ kind: 'gap', gap: { node_seq_first: 0, node_seq_last: 9, reason: 'sink_failed' } });
    expect(buffer.dropped).toBe(10);
    // Its own counts and the sink's, as the node's status shows them.
    expect(buffer.status()).toEqual({ traceRecords: 30, traceDropped: 10 + 3, traceSpooled: 7, traceReplayed: 5, traceGaps: 1 + 1, traceSpoolBytes: 4096 });
  });

  it('an NDJSON sink gets the gap as a line of its own, in place', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lattice-trace-gaps-'));
    dirs.push(dir);
    const path = join(dir, 'node-0.ndjson');
    const sink = new NdjsonFileSink(path);
    const buffer = new TraceBuffer(sink, { batchRecordsMax: 4, bufferedRecordsMax: 10, flushIntervalMs: 5 });
    const records = makeRecords('run-nd', 20, 1);
    for (const r of records.slice(0, 14)) buffer.push(r);
    await buffer.flush();
    for (const r of records.slice(14)) buffer.push(r);
    await buffer.close();
    await sink.close();
    const lines = readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as TraceRecord | GapRecord);
    const items: Item[] = lines.map((l) => ('record_type' in l ? { kind: 'gap', gap: l } : { kind: 'record', seq: l.node_seq }));
    covered(items, 20);
    expect(items.filter((i) => i.kind === 'gap').length).toBe(1);
  });
});
