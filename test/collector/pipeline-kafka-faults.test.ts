/**
 * The ingest pipeline under faults, against the real Kafka broker and the real engine: the store
 * unavailable for a while, and malformed input mixed with good records.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Collector, RecordWriter } from '../../collector/collector.ts';
import { parseDeadLetter, type DeadLetter } from '../../collector/dead-letter.ts';
import { recordKey } from '../../collector/producer-sink.ts';
import { KafkaTransport } from '../../collector/transport/kafka.ts';
import type { TransportConsumer } from '../../collector/transport/transport.ts';
import { StoreError } from '../../core/errors.ts';
import type { Store } from '../../store/client.ts';
import { migrate } from '../../store/migrations.ts';
import { countTransitions, eventIds } from '../../store/transitions.ts';
import { requireKafkaBroker } from '../support/kafka.ts';
import { makeRecord, makeRecords } from '../support/records.ts';
import { openTestStore } from '../support/store.ts';
import { collectorFor, drained, freshPipeline, produce, unique, waitFor } from './pipeline-support.ts';

describe('ingest pipeline under faults: Kafka → collector → ClickHouse', () => {
  let store: Store;
  let transport: KafkaTransport;
  const running: { stop(): Promise<void> }[] = [];
  beforeAll(async () => {
    transport = new KafkaTransport({ brokers: await requireKafkaBroker(), clientId: 'lattice-pipeline-faults-test', partitionsConsumedConcurrently: 2, fetchMaxWaitMs: 100 });
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

  it('ClickHouse unavailable for a while: consumption waits, nothing is lost or reordered per node once it returns', async () => {
    const names = await freshPipeline(transport, 'outage', 3);
    const records = makeRecords(names.runId, 3_000, 6);
    let outageEndsAt = Number.POSITIVE_INFINITY;
    let refused = 0;
    const writeOrder: { node: number; node_seq: number }[] = [];
    const flaky = (writer: RecordWriter): RecordWriter => ({
      ...writer,
      async write(batch, rows) {
        if (outageEndsAt === Number.POSITIVE_INFINITY) outageEndsAt = Date.now() + 2_000;
        if (Date.now() < outageEndsAt) {
          refused++;
          throw new StoreError('STORE_UNAVAILABLE', 'connect ECONNREFUSED 127.0.0.1:8123 (simulated outage)', { retriable: true });
        }
        await writer.write(batch, rows);
        for (const r of batch) writeOrder.push({ node: r.node, node_seq: r.node_seq });
      },
    });
    const collector = collectorFor(transport, store, names, flaky, 500);
    await start(collector);
    await produce(transport, names.topic, records);
    await waitFor(() => refused >= 3, 20_000, 'the store to refuse a few inserts');
    // During the outage nothing is stored or committed (the producer bundles records, so lag
    // counts messages, not records).
    expect(await countTransitions(store, names.runId)).toBe(0);
    expect(await transport.lag(names.groupId, names.topic)).toBeGreaterThan(0);
    expect(collector.stats.stored).toBe(0);
    await waitFor(async () => await drained(transport, names), 45_000, 'the collector to catch up after the outage');
    await collector.stop();

    expect(collector.stats.storeRetries).toBeGreaterThanOrEqual(3);
    expect(await countTransitions(store, names.runId)).toBe(records.length);
    expect(new Set(await eventIds(store, names.runId))).toEqual(new Set(records.map((r) => r.event_id)));
    for (let node = 0; node < 6; node++) {
      const seqs = writeOrder.filter((w) => w.node === node).map((w) => w.node_seq);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    }
  });

  it('bad input lands in the DLQ with its reason and source offset; good records of the same batch are stored', async () => {
    const names = await freshPipeline(transport, 'dlq', 1);
    const good = makeRecords(names.runId, 20, 2);
    const json = (o: unknown) => JSON.stringify(o);
    const base = makeRecord({ run_id: names.runId, node: 9, node_seq: 0 });
    const { phase: _omitted, ...missingPhase } = base;
    const bad: { label: string; value: string; reason: DeadLetter['reason']; path?: string }[] = [
      { label: 'truncated', value: json(base).slice(0, 60), reason: 'malformed_json' },
      { label: 'wrong-type', value: json({ ...base, node_seq: 1, event_id: `${names.runId}/9/1`, msgs_sent: 'three' }), reason: 'schema_invalid', path: 'msgs_sent' },
      { label: 'missing-field', value: json(missingPhase), reason: 'schema_invalid', path: 'phase' },
      { label: 'oversized', value: json({ ...base, node_seq: 2, event_id: `${names.runId}/9/2`, run_id: 'x'.repeat(70 * 1024) }), reason: 'oversized' },
      { label: 'unknown-protocol', value: json({ ...base, node_seq: 3, event_id: `${names.runId}/9/3`, protocol: 'raft' }), reason: 'schema_invalid', path: 'protocol' },
    ];
    const producer = await transport.createProducer();
    const messages = [
      ...good.slice(0, 10).map((r) => ({ key: recordKey(r), value: json(r) })),
      ...bad.map((b) => ({ key: b.label, value: b.value })),
      ...good.slice(10).map((r) => ({ key: recordKey(r), value: json(r) })),
    ];
    await producer.send(names.topic, messages);
    await producer.close();

    const letters: DeadLetter[] = [];
    const dlqConsumer: TransportConsumer = await transport.createConsumer({ groupId: unique('dlq-reader'), topics: [names.dlqTopic], fromBeginning: true });
    running.push(dlqConsumer);
    await dlqConsumer.run(async (batch) => {
      for (const m of batch.messages) letters.push(parseDeadLetter(m)!);
    });
    const collector = collectorFor(transport, store, names);
    await start(collector);
    await waitFor(async () => letters.length >= bad.length && (await drained(transport, names)), 45_000, 'dead letters and commits');
    await collector.stop();

    expect(collector.stats.deadLettered).toBe(bad.length);
    expect(await countTransitions(store, names.runId)).toBe(good.length);
    expect(new Set(await eventIds(store, names.runId))).toEqual(new Set(good.map((r) => r.event_id)));
    for (const [i, b] of bad.entries()) {
      const letter = letters.find((l) => l.source.key === b.label);
      expect(letter, b.label).toBeDefined();
      expect(letter!.reason, b.label).toBe(b.reason);
      expect(letter!.source.topic).toBe(names.topic);
      expect(letter!.source.partition).toBe(0);
      expect(letter!.source.offset, b.label).toBe(String(10 + i));
      expect(letter!.errors.length, b.label).toBeGreaterThan(0);
      if (b.path) expect(letter!.errors.map((e) => e.path), b.label).toContain(b.path);
    }
    const oversized = letters.find((l) => l.source.key === 'oversized')!;
    expect(oversized.value.length).toBeGreaterThan(64 * 1024);
    expect(oversized.value.toString()).toBe(bad.find((b) => b.label === 'oversized')!.value);
  });
});
