import { claimsToBeSnapshot } from '../../core/metrics-snapshot.ts';
import { makeSnapshot } from '../support/snapshots.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeMessage } from '../../collector/decode.ts';
import { registerProducerMetrics } from '../../collector/producer-metrics.ts';
import { BatchingProducerSink, ProducerSink, recordKey, type BatchingProducerSinkOptions } from '../../collector/producer-sink.ts';
import { Spool } from '../../collector/spool.ts';
import type { OutgoingMessage, TransportProducer } from '../../collector/transport/transport.ts';
import { TransportError } from '../../core/errors.ts';
import { makeGapRecord, type GapRecord } from '../../core/gap-record.ts';
import type { TraceRecord } from '../../core/trace-schema.ts';
import { waitFor } from '../support/transport-contract.ts';
import { makeRecords } from '../support/records.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A producer whose sends complete only when the test says so. */
function gatedProducer() {
  const sends: OutgoingMessage[][] = [];
  const gates: (() => void)[] = [];
  let fail = false;
  const producer: TransportProducer = {
    send: (_topic, messages) =>
      new Promise<void>((resolve, reject) => {
        sends.push([...messages]);
        gates.push(() => (fail ? reject(new TransportError('TRANSPORT_FAILED', 'broker gone', { retriable: true })) : resolve()));
      }),
    close: async () => undefined,
  };
  return { producer, sends, release: () => gates.shift()?.(), failNext: () => (fail = true) };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('BatchingProducerSink', () => {
  it('batches small writes, keys by run and node, keeps order, and flushes the rest', async () => {
    const { producer, sends, release } = gatedProducer();
    const sink = new BatchingProducerSink(producer, { topic: 't', batchRecordsMax: 100, lingerMs: 10_000, recordsPerMessageMax: 1 });
    const records = makeRecords('run-p', 250, 3);
    for (let i = 0; i < records.length; i += 5) await sink.write(records.slice(i, i + 5));
    expect(sends.length).toBe(1);
    expect(sends[0]!.length).toBe(100);
    const flushed = sink.flush();
    for (let i = 0; i < 5; i++) {
      release();
      await tick();
    }
    await flushed;
    expect(sends.map((s) => s.length)).toEqual([100, 100, 50]);
    const all = sends.flat();
    expect(all.map((m) => m.value)).toEqual(records.map((r) => JSON.stringify(r)));
    expect(all[4]!.key).toBe(recordKey(records[4]!));
    expect(sink.recordsSent).toBe(250);
  });

  it('bundles one node\'s records into NDJSON messages, in order, and the collector decodes them back', async () => {
    const { producer, sends, release } = gatedProducer();
    const sink = new BatchingProducerSink(producer, { topic: 't', batchRecordsMax: 1_000, recordsPerMessageMax: 10 });
    const records = makeRecords('run-b', 90, 3);
    await sink.write(records);
    const flushed = sink.flush();
    release();
    await flushed;
    const messages = sends.flat();
    expect(messages.length).toBe(9);
    for (const node of [0, 1, 2]) {
      const ofNode = messages.filter((m) => m.key === `run-b/${node}`).flatMap((m) => decodeMessage(Buffer.from(m.value), 64 * 1024));
      expect(ofNode.map((d) => (d.ok && d.kind === 'transition' ? d.record.node_seq : -1))).toEqual(Array.from({ length: 30 }, (_, i) => i));
    }
  });

  it('applies backpressure: a write waits while the buffer is full, memory stays bounded', async () => {
    const { producer, release } = gatedProducer();
    const sink = new BatchingProducerSink(producer, { topic: 't', batchRecordsMax: 50, bufferedRecordsMax: 100, lingerMs: 10_000 });
    let done = false;
    const writing = sink.write(makeRecords('run-bp', 300)).then(() => (done = true));
    await tick();
    expect(done).toBe(false);
    expect(sink.recordsBuffered).toBeLessThanOrEqual(100);
    for (let i = 0; i < 10 && !done; i++) {
      release();
      await tick();
      expect(sink.recordsBuffered).toBeLessThanOrEqual(100);
    }
    await writing;
    expect(done).toBe(true);
  });

});

describe('ProducerSink', () => {
  it('sends each write at once, in chunks', async () => {
    const { producer, sends, release } = gatedProducer();
    const sink = new ProducerSink(producer, { topic: 't', sendRecordsMax: 40 });
    const writing = sink.write(makeRecords('run-s', 100));
    for (let i = 0; i < 3; i++) {
      await tick();
      release();
    }
    await writing;
    expect(sends.map((s) => s.length)).toEqual([40, 40, 20]);
  });
});

/**
 * A transport producer that is up or down at the test's word: while down, every send fails with
 * a retriable error (as the Kafka transport's does when the broker is away); `poison` records
 * make any send containing them fail for good (as a message too large does).
 */
class FlakyProducer implements TransportProducer {
  up = true;
  attempts = 0;
  readonly accepted: OutgoingMessage[] = [];
  poison = new Set<string>();

  async send(_topic: string, messages: readonly OutgoingMessage[]): Promise<void> {
    this.attempts++;
    await new Promise((resolve) => setImmediate(resolve));
    if (!this.up) throw new TransportError('TRANSPORT_FAILED', 'broker away', { retriable: true });
    for (const m of messages) for (const id of this.poison) if (String(m.value).includes(`"event_id":"${id}"`) || String(m.value).includes(`"snapshot_id":"${id}"`)) throw new TransportError('TRANSPORT_FAILED', 'MESSAGE_TOO_LARGE', { retriable: false });
    this.accepted.push(...messages);
  }

  async close(): Promise<void> {}

  /** What arrived, decoded, in order: records and gaps. */
  decoded(): ({ kind: 'transition'; record: TraceRecord } | { kind: 'gap'; gap: GapRecord })[] {
    const out: ({ kind: 'transition'; record: TraceRecord } | { kind: 'gap'; gap: GapRecord })[] = [];
    for (const m of this.accepted) {
      for (const d of decodeMessage(Buffer.from(m.value), 1 << 20)) {
        if (!d.ok) throw new Error(`undecodable message: ${d.reason}`);
        if (d.kind === 'transition') out.push({ kind: 'transition', record: d.record });
        else if (d.kind === 'gap') out.push({ kind: 'gap', gap: d.gap });
      }
    }
    return out;
  }
}

const FAST = { retryBackoffInitialMs: 1, retryBackoffMaxMs: 5, lingerMs: 1 } satisfies Partial<BatchingProducerSinkOptions>;

function spoolDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'lattice-psink-'));
  dirs.push(dir);
  return dir;
}

/**
 * Per node: node_seq positions covered by delivered records and by gaps must be exactly
 * 0..n-1 with nothing twice (redelivered records aside), and records and gaps must come in
 * node_seq order.
 */
function checkAccounting(producer: FlakyProducer, produced: readonly TraceRecord[]) {
  const perNode = new Map<number, number>();
  for (const r of produced) perNode.set(r.node, Math.max(perNode.get(r.node) ?? 0, r.node_seq + 1));
  const items = producer.decoded();
  let gapRecords = 0;
  let gaps = 0;
  for (const [node, n] of perNode) {
    const covered = new Array<number>(n).fill(0);
    let next = 0;
    for (const item of items) {
      if (item.kind === 'transition' && item.record.node === node) {
        expect(item.record.node_seq, `node ${node} order`).toBeGreaterThanOrEqual(next);
        if (covered[item.record.node_seq] === 0) covered[item.record.node_seq] = 1;
        next = item.record.node_seq + 1;
      } else if (item.kind === 'gap' && item.gap.node === node) {
        expect(item.gap.node_seq_first, `node ${node} gap order`).toBe(next);
        for (let i = item.gap.node_seq_first; i <= item.gap.node_seq_last; i++) covered[i] = (covered[i] ?? 0) + 1;
        next = item.gap.node_seq_last + 1;
        gapRecords += item.gap.records;
        gaps++;
      }
    }
    expect(covered.every((c) => c === 1), `node ${node}: every position exactly once`).toBe(true);
  }
  return { gapRecords, gaps, records: items.filter((i) => i.kind === 'transition').length };
}

describe('BatchingProducerSink through outages', () => {
  it('retries a failed send with backoff until it goes through; nothing is lost or reordered', async () => {
    const producer = new FlakyProducer();
    const sink = new BatchingProducerSink(producer, { topic: 't', batchRecordsMax: 50, ...FAST });
    const records = makeRecords('run-r', 400, 4);
    await sink.write(records.slice(0, 100));
    producer.up = false;
    await sink.write(records.slice(100, 200));
    await waitFor(() => sink.stats.sendFailures >= 5, 10_000, 'failed attempts');
    producer.up = true;
    await sink.write(records.slice(200));
    await sink.flush();
    const counts = checkAccounting(producer, records);
    expect(counts.gaps).toBe(0);
    expect(sink.stats.recordsSent).toBe(400);
    expect(sink.stats.recordsDropped).toBe(0);
  });

  it("with whenFull 'spool', never makes the writer wait: the spool takes the overflow and replays it in order", async () => {
    const producer = new FlakyProducer();
    const spool = Spool.open({ dir: spoolDir(), bytesMax: 16 << 20, segmentBytes: 64 * 1024 });
    const sink = new BatchingProducerSink(producer, { topic: 't', batchRecordsMax: 100, bufferedRecordsMax: 200, whenFull: 'spool', spool, ...FAST });
    const records = makeRecords('run-s', 3_000, 3);
    producer.up = false;
    for (let i = 0; i < 2_000; i += 10) {
      // Resolved at once, whatever the broker does.
      let resolved = false;
      void sink.write(records.slice(i, i + 10)).then(() => (resolved = true));
      await Promise.resolve();
      expect(resolved).toBe(true);
      expect(sink.recordsBuffered).toBeLessThanOrEqual(200);
    }
    expect(sink.stats.recordsSpooled).toBeGreaterThan(1_500);
    expect(sink.stats.spoolBytes).toBeGreaterThan(0);
    producer.up = true;
    // Written while the spool drains: behind it.
    for (let i = 2_000; i < 3_000; i += 10) await sink.write(records.slice(i, i + 10));
    await sink.flush();
    const counts = checkAccounting(producer, records);
    expect(counts.gaps).toBe(0);
    expect(counts.records).toBe(3_000);
    expect(sink.stats.recordsReplayed).toBe(sink.stats.recordsSpooled);
    expect(sink.stats.spoolBytes).toBe(0);
    await sink.close();
  });

  it('when even the spool is full, drops with exact accounting: one gap per node per contiguous run, in order', async () => {
    const producer = new FlakyProducer();
    const spool = Spool.open({ dir: spoolDir(), bytesMax: 64 * 1024, segmentBytes: 16 * 1024 });
    const registry = new Registry();
    const sink = new BatchingProducerSink(producer, { topic: 't', batchRecordsMax: 50, bufferedRecordsMax: 50, whenFull: 'spool', spool, ...FAST });
    registerProducerMetrics(registry, () => sink.stats);
    const records = makeRecords('run-full', 2_400, 4);
    producer.up = false;
    for (let i = 0; i < 2_000; i += 8) await sink.write(records.slice(i, i + 8));
    expect(sink.stats.recordsDropped).toBeGreaterThan(0);
    expect(sink.stats.spoolBytes).toBeLessThanOrEqual(64 * 1024);
    // Every node is dropping; its gap is open (one per node so far).
    expect(sink.stats.gapsDeclared).toBe(4);
    producer.up = true;
    for (let i = 2_000; i < 2_400; i += 8) await sink.write(records.slice(i, i + 8));
    await sink.flush();
    const counts = checkAccounting(producer, records);
    expect(counts.gapRecords).toBe(sink.stats.recordsDropped);
    expect(counts.gaps).toBe(sink.stats.gapsDeclared);
    expect(counts.records + counts.gapRecords).toBe(2_400);
    for (const item of producer.decoded()) if (item.kind === 'gap') expect(item.gap.reason).toBe('spool_full');
    const text = await registry.metrics();
    expect(text).toContain(`lattice_producer_records_dropped_total ${sink.stats.recordsDropped}`);
    expect(text).toContain(`lattice_producer_gaps_total ${sink.stats.gapsDeclared}`);
    expect(text).toContain(`lattice_producer_records_spooled_total ${sink.stats.recordsSpooled}`);
    expect(text).toContain(`lattice_producer_records_replayed_total ${sink.stats.recordsReplayed}`);
    expect(text).toContain('lattice_producer_spool_bytes 0');
    await sink.close();
  });

  it('without a spool, overflow becomes gaps at once (still never waiting)', async () => {
    const producer = new FlakyProducer();
    const sink = new BatchingProducerSink(producer, { topic: 't', batchRecordsMax: 20, bufferedRecordsMax: 40, whenFull: 'spool', ...FAST });
    const records = makeRecords('run-nospool', 300, 2);
    producer.up = false;
    for (let i = 0; i < 200; i += 5) await sink.write(records.slice(i, i + 5));
    producer.up = true;
    for (let i = 200; i < 300; i += 5) await sink.write(records.slice(i, i + 5));
    await sink.flush();
    const counts = checkAccounting(producer, records);
    expect(counts.gapRecords).toBe(sink.stats.recordsDropped);
    expect(counts.gapRecords).toBeGreaterThan(100);
  });

  it('a record rejected for good becomes a sink_failed gap; the rest of its batch goes through (bisection)', async () => {
    const producer = new FlakyProducer();
    const sink = new BatchingProducerSink(producer, { topic: 't', batchRecordsMax: 64, recordsPerMessageMax: 10, ...FAST });
    const records = makeRecords('run-poison', 200, 2);
    producer.poison.add(records[77]!.event_id);
    producer.poison.add(records[79]!.event_id);
    await sink.write(records);
    await sink.flush();
    const counts = checkAccounting(producer, records);
    expect(counts.records).toBe(198);
    const gaps = producer.decoded().filter((i) => i.kind === 'gap').map((i) => (i as { gap: GapRecord }).gap);
    expect(gaps.map((g) => [g.node, g.node_seq_first, g.node_seq_last, g.reason])).toEqual([
      [1, 38, 38, 'sink_failed'],
      [1, 39, 39, 'sink_failed'],
    ]);
    expect(sink.stats.recordsDropped).toBe(2);
    expect(sink.stats.gapsDeclared).toBe(2);
  });

  it('metrics snapshots: held through a broker outage and delivered after it; one rejected for good is dropped alone and counted', async () => {
    const producer = new FlakyProducer();
    const sink = new BatchingProducerSink(producer, { topic: 't', batchRecordsMax: 16, recordsPerMessageMax: 10, ...FAST });
    const records = makeRecords('run-snaps', 40, 2);
    const snapshots = [0, 1, 2, 3].map((snap_seq) => makeSnapshot({ run_id: 'run-snaps', node: 1, snap_seq }));
    producer.poison.add(snapshots[2]!.snapshot_id);
    producer.up = false;
    await sink.write(records.slice(0, 20));
    await sink.writeSnapshots(snapshots.slice(0, 2));
    await sink.write(records.slice(20));
    await sink.writeSnapshots(snapshots.slice(2));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(producer.accepted).toHaveLength(0);
    producer.up = true;
    await sink.flush();
    const delivered = producer.accepted.flatMap((m) => String(m.value).split('\n')).map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(delivered.filter(claimsToBeSnapshot).map((x) => x.snap_seq)).toEqual([0, 1, 3]);
    expect(checkAccounting(producer, records).records).toBe(40);
    expect(sink.stats).toMatchObject({ snapshotsSent: 3, snapshotsDropped: 1, recordsDropped: 0 });
  });

  it('delivers gaps declared upstream in order with the records', async () => {
    const producer = new FlakyProducer();
    const sink = new BatchingProducerSink(producer, { topic: 't', batchRecordsMax: 10, ...FAST });
    const records = makeRecords('run-up', 30, 1);
    await sink.write(records.slice(0, 10));
    await sink.writeGap(makeGapRecord({ runId: 'run-up', node: 0, first: 10, last: 19, reason: 'buffer_full', declaredAtUs: 1 }));
    await sink.write(records.slice(20));
    await sink.flush();
    const counts = checkAccounting(producer, records);
    expect(counts).toEqual({ gapRecords: 10, gaps: 1, records: 20 });
  });

  it('a send that never answers counts as failed after sendTimeoutMs and is tried again', async () => {
    let hang = true;
    const accepted: OutgoingMessage[] = [];
    const producer: TransportProducer = {
      send: (_t, messages) => (hang ? new Promise<void>(() => undefined) : Promise.resolve(void accepted.push(...messages))),
      close: async () => undefined,
    };
    const sink = new BatchingProducerSink(producer, { topic: 't', batchRecordsMax: 10, sendTimeoutMs: 20, ...FAST });
    await sink.write(makeRecords('run-hang', 10, 1));
    await waitFor(() => sink.stats.sendFailures >= 2, 10_000, 'timed-out attempts');
    hang = false;
    await sink.flush();
    expect(accepted.flatMap((m) => String(m.value).split('\n')).length).toBe(10);
  });

  it('closed while the broker is away: the rest waits in the spool, and the next process replays it first, in order', async () => {
    const dir = spoolDir();
    const options = { dir, bytesMax: 16 << 20, segmentBytes: 64 * 1024 };
    const first = new FlakyProducer();
    const records = makeRecords('run-restart', 1_000, 2);
    const sink = new BatchingProducerSink(first, { topic: 't', batchRecordsMax: 50, bufferedRecordsMax: 500, whenFull: 'spool', spool: Spool.open(options), ...FAST });
    await sink.write(records.slice(0, 100));
    await sink.flush();
    first.up = false;
    // Some in memory (below the bound), one batch in flight and failing.
    for (let i = 100; i < 400; i += 10) await sink.write(records.slice(i, i + 10));
    await sink.close(50);
    expect(first.decoded().length).toBe(100);

    const second = new FlakyProducer();
    const spool = Spool.open(options);
    expect(spool.recovered.records).toBe(300);
    const restarted = new BatchingProducerSink(second, { topic: 't', batchRecordsMax: 50, bufferedRecordsMax: 500, whenFull: 'spool', spool, ...FAST });
    // Written while the leftovers replay: behind them.
    for (let i = 400; i < 1_000; i += 10) await restarted.write(records.slice(i, i + 10));
    await restarted.flush();
    expect(restarted.stats.recordsReplayed).toBeGreaterThanOrEqual(300);
    const all = new FlakyProducer();
    all.accepted.push(...first.accepted, ...second.accepted);
    const counts = checkAccounting(all, records);
    expect(counts).toEqual({ gapRecords: 0, gaps: 0, records: 1_000 });
    await restarted.close();
  });
});
