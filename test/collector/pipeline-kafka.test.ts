/**
 * The ingest pipeline against the real Kafka broker and the real (embedded) ClickHouse engine:
 * exactly the input set arrives, also across a collector killed mid-batch, and two collectors in
 * one group share the partitions.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Collector, RecordWriter } from '../../collector/collector.ts';
import { KafkaTransport } from '../../collector/transport/kafka.ts';
import { StoreError } from '../../core/errors.ts';
import type { Store } from '../../store/client.ts';
import { migrate } from '../../store/migrations.ts';
import { countTransitions, eventIds } from '../../store/transitions.ts';
import { requireKafkaBroker } from '../support/kafka.ts';
import { makeRecords } from '../support/records.ts';
import { openTestStore } from '../support/store.ts';
import { collectorFor, drained, freshPipeline, produce, rawRowCount, waitFor } from './pipeline-support.ts';

describe('ingest pipeline: Kafka → collector → ClickHouse', () => {
  let store: Store;
  let transport: KafkaTransport;
  const running: Collector[] = [];
  beforeAll(async () => {
    transport = new KafkaTransport({ brokers: await requireKafkaBroker(), clientId: 'lattice-pipeline-test', partitionsConsumedConcurrently: 2, fetchMaxWaitMs: 100 });
    store = await openTestStore();
    await migrate(store);
  });
  afterAll(async () => {
    for (const c of running) await c.stop().catch(() => undefined);
    await transport?.close();
    await store?.close();
  });
  const start = (c: Collector) => {
    running.push(c);
    return c.start();
  };

  it('stores exactly the produced set: N records in, the same N event ids out', async () => {
    const names = await freshPipeline(transport, 'exact');
    const records = makeRecords(names.runId, 3_000, 6);
    await produce(transport, names.topic, records);
    const collector = collectorFor(transport, store, names);
    await start(collector);
    await waitFor(async () => collector.stats.stored >= records.length && (await drained(transport, names)), 45_000, 'all records stored and committed');
    await collector.stop();
    expect(collector.stats.deadLettered).toBe(0);
    // No failure, so no redelivery: each record was consumed once.
    expect(collector.stats.consumed).toBe(records.length);
    expect(await countTransitions(store, names.runId)).toBe(records.length);
    expect(new Set(await eventIds(store, names.runId))).toEqual(new Set(records.map((r) => r.event_id)));
  });

  it('a collector killed mid-batch (stored, not committed): the restarted group redelivers, no duplicates remain, nothing is missing', async () => {
    const names = await freshPipeline(transport, 'kill', 2);
    const records = makeRecords(names.runId, 2_000, 4);
    await produce(transport, names.topic, records);

    const writtenByFirst = new Set<string>();
    let inserts = 0;
    let first: Collector | undefined;
    const killAfterSecondInsert = (writer: RecordWriter): RecordWriter => ({
      ...writer,
      async write(batch, rows) {
        await writer.write(batch, rows);
        for (const r of batch) writtenByFirst.add(r.event_id);
        if (++inserts === 2) {
          // The process "dies" between storing and committing: shutting down, the insert reports
          // failure, so the batch is abandoned uncommitted.
          void first!.stop();
          throw new StoreError('STORE_UNAVAILABLE', 'killed after the insert, before the commit', { retriable: true });
        }
      },
    });
    first = collectorFor(transport, store, names, killAfterSecondInsert, 300);
    await start(first);
    await waitFor(() => first!.currentState === 'stopped', 45_000, 'first collector to die');
    expect(writtenByFirst.size).toBeGreaterThan(0);
    // Whatever it stored, it committed nothing of the batch that died.
    expect(await transport.lag(names.groupId, names.topic)).toBeGreaterThan(0);

    const rewritten = new Set<string>();
    const second = collectorFor(transport, store, names, (writer) => ({
      ...writer,
      async write(batch, rows) {
        await writer.write(batch, rows);
        for (const r of batch) if (writtenByFirst.has(r.event_id)) rewritten.add(r.event_id);
      },
    }));
    await start(second);
    await waitFor(async () => await drained(transport, names), 45_000, 'restarted group to commit everything');
    await second.stop();

    // The redelivered records the first collector had stored are recognised as stored (same
    // contents) and skipped, so not even the raw table holds a second copy.
    expect(second.stats.duplicatesSkipped).toBeGreaterThan(0);
    expect(second.stats.conflicts).toBe(0);
    expect(rewritten.size).toBe(0);
    expect(await rawRowCount(store, names.runId)).toBe(records.length);
    expect(await countTransitions(store, names.runId)).toBe(records.length);
    expect(new Set(await eventIds(store, names.runId))).toEqual(new Set(records.map((r) => r.event_id)));
  });

  it('two collectors in one group split the partitions and together store the input once', async () => {
    const names = await freshPipeline(transport, 'share', 4);
    const a = collectorFor(transport, store, names);
    const b = collectorFor(transport, store, names);
    await start(a);
    await start(b);
    // Let the group settle on both members before producing.
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    const records = makeRecords(names.runId, 2_400, 16);
    await produce(transport, names.topic, records);
    await waitFor(async () => a.stats.stored + b.stats.stored >= records.length && (await drained(transport, names)), 45_000, 'both collectors to drain the topic');
    await a.stop();
    await b.stop();
    expect(a.stats.stored).toBeGreaterThan(0);
    expect(b.stats.stored).toBeGreaterThan(0);
    expect(await countTransitions(store, names.runId)).toBe(records.length);
    expect(new Set(await eventIds(store, names.runId))).toEqual(new Set(records.map((r) => r.event_id)));
  });
});
