/**
 * A collector keeps consuming through what used to stop it for good, against the real broker:
 * a store whose inserts hang longer than the group's session timeout, and a consumer that
 * crashes with an error kafkajs does not recover from. Readiness tells the truth meanwhile.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Collector, RecordWriter } from '../../collector/collector.ts';
import { readinessOf } from '../../collector/health.ts';
import { KafkaTransport } from '../../collector/transport/kafka.ts';
import { createLogger } from '../../core/logging.ts';
import type { Store } from '../../store/client.ts';
import { migrate } from '../../store/migrations.ts';
import { countTransitions, eventIds } from '../../store/transitions.ts';
import { requireKafkaBroker } from '../support/kafka.ts';
import { makeRecords } from '../support/records.ts';
import { openTestStore } from '../support/store.ts';
import { collectorFor, drained, freshPipeline, produce, rawRowCount, waitFor } from './pipeline-support.ts';

describe('collector supervision (real broker, real engine)', () => {
  let store: Store;
  let transport: KafkaTransport;
  const running: Collector[] = [];
  beforeAll(async () => {
    transport = new KafkaTransport({ brokers: await requireKafkaBroker(), clientId: 'lattice-supervision-test', partitionsConsumedConcurrently: 2, fetchMaxWaitMs: 100, consumerRestartMaxMs: 1_000 });
    store = await openTestStore();
    await migrate(store);
  });
  afterAll(async () => {
    for (const c of running) await c.stop().catch(() => undefined);
    await transport?.close();
    await store?.close();
  });

  it('inserts that hang for 25 s (longer than the 10 s session timeout): the member stays in the group, then everything is stored', async () => {
    const names = await freshPipeline(transport, 'hang', 2);
    const records = makeRecords(names.runId, 1_200, 4);
    let hangUntil = 0;
    let hung = 0;
    const hanging = (writer: RecordWriter): RecordWriter => ({
      ...writer,
      async write(batch, rows) {
        if (hangUntil === 0) hangUntil = Date.now() + 25_000;
        const wait = hangUntil - Date.now();
        if (wait > 0) {
          hung++;
          await new Promise((resolve) => setTimeout(resolve, wait));
        }
        await writer.write(batch, rows);
      },
    });
    const collector = collectorFor(transport, store, names, hanging, 400);
    running.push(collector);
    const startedAtMs = Date.now();
    await collector.start();
    await produce(transport, names.topic, records);
    await waitFor(() => hung > 0 && Date.now() > hangUntil - 15_000, 30_000, 'an insert to have hung for 10 s');
    // Mid-stall: the store has not failed (it hangs), so readiness sees it as a stall.
    const lag = await transport.lag(names.groupId, names.topic);
    expect(lag).toBeGreaterThan(0);
    const midStall = readinessOf({ health: collector.health(), lag, nowMs: Date.now(), startedAtMs, stallAfterMs: 5_000 });
    expect(midStall.ready).toBe(false);
    expect(midStall.reasons.join(' ')).toMatch(/stalled: \d+ messages waiting/);

    await waitFor(async () => await drained(transport, names), 60_000, 'the collector to drain the topic after the stall');
    const health = collector.health();
    expect(health.consumers.every((c) => c.state === 'running')).toBe(true);
    await collector.stop();
    expect(await countTransitions(store, names.runId)).toBe(records.length);
    expect(new Set(await eventIds(store, names.runId))).toEqual(new Set(records.map((r) => r.event_id)));
  }, 120_000);

  it('a rebalance while a batch is in hand: the refused commit leaves the batch for redelivery, stored once, no crash', async () => {
    // A second collector joins while the first one's insert hangs: the group rebalances under
    // it, so its commit after the insert is refused (the group moved on). That must neither
    // crash it nor lose or double the batch: it is redelivered and found already stored.
    const lines: string[] = [];
    const logged = createLogger('warn', {}, (line) => lines.push(line));
    const own = new KafkaTransport({ brokers: await requireKafkaBroker(), clientId: 'lattice-rebalance-test', fetchMaxWaitMs: 100, logger: logged });
    const names = await freshPipeline(own, 'rebalance', 2);
    const records = makeRecords(names.runId, 800, 4);
    let firstInsert = true;
    let joined: Promise<void> | undefined;
    let second: Collector | undefined;
    const slowFirst = (writer: RecordWriter): RecordWriter => ({
      ...writer,
      async write(batch, rows) {
        if (firstInsert) {
          firstInsert = false;
          second = collectorFor(transport, store, names);
          running.push(second);
          joined = second.start();
          await new Promise((resolve) => setTimeout(resolve, 8_000));
        }
        await writer.write(batch, rows);
      },
    });
    const first = collectorFor(own, store, names, slowFirst, 10_000);
    running.push(first);
    try {
      await first.start();
      await produce(own, names.topic, records);
      await waitFor(() => joined !== undefined, 30_000, 'the first insert');
      await joined;
      await waitFor(async () => await drained(own, names), 60_000, 'the group to drain after the rebalance');
      expect(lines.join('\n')).toMatch(/offset commit refused: the group rebalanced during the batch/);
      const health = [...first.health().consumers, ...second!.health().consumers];
      expect(health.every((c) => c.state === 'running' && c.crashes === 0)).toBe(true);
      expect(await countTransitions(store, names.runId)).toBe(records.length);
      expect(await rawRowCount(store, names.runId)).toBe(records.length);
    } finally {
      await first.stop();
      await second?.stop();
      await own.close();
    }
  }, 120_000);

  it('a consumer that crashes on an error kafkajs gives up on is rebuilt, rejoins, and the batch is redelivered', async () => {
    const names = await freshPipeline(transport, 'crash', 2);
    const records = makeRecords(names.runId, 600, 3);
    let crashes = 0;
    const crashingOnce = (writer: RecordWriter): RecordWriter => ({
      ...writer,
      async write(batch, rows) {
        // Not a LatticeError: a bug. The handler fails, kafkajs sees a non-retriable error and stops.
        if (crashes++ === 0) throw new TypeError('an unexpected failure no one planned for');
        await writer.write(batch, rows);
      },
    });
    const collector = collectorFor(transport, store, names, crashingOnce, 10_000);
    running.push(collector);
    await collector.start();
    await produce(transport, names.topic, records);
    await waitFor(async () => await drained(transport, names), 60_000, 'the rebuilt consumer to drain the topic');
    const health = collector.health();
    expect(health.consumers.reduce((sum, c) => sum + c.restarts, 0)).toBeGreaterThanOrEqual(1);
    expect(health.consumers.every((c) => c.state === 'running')).toBe(true);
    await collector.stop();
    expect(await countTransitions(store, names.runId)).toBe(records.length);
  }, 90_000);
});
