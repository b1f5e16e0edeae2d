/**
 * The collector service (what `lattice collect` runs) on the in-process transport and the
 * embedded engine: ingest, features refreshed, Prometheus metrics scraped, graceful stop.
 */
import { makeSnapshot } from '../support/snapshots.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BatchingProducerSink, ProducerCounters } from '../../collector/producer-sink.ts';
import { runCollectorService, type CollectorServiceHandle } from '../../collector/run.ts';
import { InProcessTransport } from '../../collector/transport/in-process.ts';
import { loadConfig } from '../../core/config.ts';
import { StoreError } from '../../core/errors.ts';
import { silentLogger } from '../../core/logging.ts';
import type { Store } from '../../store/client.ts';
import { readFeatureRows } from '../../store/features.ts';
import { countTransitions } from '../../store/transitions.ts';
import { makeRecord, makeRecords } from '../support/records.ts';
import { openTestStore } from '../support/store.ts';
import { waitFor } from './pipeline-support.ts';

const metric = (text: string, name: string): number => {
  const line = text.split('\n').find((l) => l.startsWith(name) && !l.startsWith('#'));
  return line === undefined ? Number.NaN : Number(line.split(' ').at(-1));
};

describe('collector service (in-process transport, embedded store)', () => {
  let store: Store;
  let service: CollectorServiceHandle;
  const transport = new InProcessTransport({ defaultPartitions: 4 });
  const abort = new AbortController();
  let outage = true;
  const producerCounters = new ProducerCounters();
  const config = loadConfig({ overrides: { collector: { group_id: 'svc-test', batch_rows_max: 400, flush_interval_ms: 50 }, transport: { partitions: 4 } } });

  beforeAll(async () => {
    store = await openTestStore();
    service = await runCollectorService({
      config,
      logger: silentLogger,
      store,
      transport,
      signal: abort.signal,
      handleSignals: false,
      producerStats: () => producerCounters.snapshot(),
      metricsPort: 0,
      featuresIntervalMs: 100,
      retry: { initialDelayMs: 10, maxDelayMs: 50, multiplier: 2, attemptsMax: Number.POSITIVE_INFINITY },
      wrapWriter: (writer) => ({
        ...writer,
        async write(records, rows) {
          if (outage) throw new StoreError('STORE_UNAVAILABLE', 'simulated outage', { retriable: true });
          await writer.write(records, rows);
        },
      }),
    });
  });
  afterAll(async () => {
    abort.abort();
    await service?.stopped;
    await store?.close();
  });

  it('ingests, refreshes features, and serves metrics: lag, batch sizes, insert latency, DLQ by reason, retries', async () => {
    const producer = await transport.createProducer();
    const sink = new BatchingProducerSink(producer, { topic: config.transport.topic, batchRecordsMax: 200, counters: producerCounters });
    const records = makeRecords('svc-run', 2_000, 4);
    await sink.write(records);
    await sink.writeSnapshots([0, 1, 2].map((snap_seq) => makeSnapshot({ run_id: 'svc-run', node: 1, snap_seq })));
    await sink.flush();
    await producer.send(config.transport.topic, [{ key: 'bad', value: '{"truncated": ' }]);

    await waitFor(() => service.stats.storeRetries >= 2, 10_000, 'retries during the outage');
    const during = await (await fetch(service.metricsUrl)).text();
    expect(metric(during, 'lattice_collector_consumer_lag')).toBeGreaterThan(0);
    // Alive, but not ready: it says it is not storing, and why.
    const healthDuring = await fetch(service.metricsUrl.replace('/metrics', '/healthz'));
    expect(healthDuring.status).toBe(200);
    expect(((await healthDuring.json()) as { consuming: boolean }).consuming).toBe(false);
    const readyDuring = await fetch(service.metricsUrl.replace('/metrics', '/readyz'));
    expect(readyDuring.status).toBe(503);
    expect(((await readyDuring.json()) as { reasons: string[] }).reasons.join(' ')).toMatch(/not storing: the store has been unavailable/);
    outage = false;

    await waitFor(async () => (await transport.lag('svc-test', config.transport.topic)) === 0, 20_000, 'the service to drain');
    expect(await countTransitions(store, 'svc-run')).toBe(records.length);
    await service.refreshFeatures();
    const features = await readFeatureRows<{ transitions: string }>(store, { runId: 'svc-run', level: 'cluster' });
    expect(features.reduce((sum, row) => sum + Number(row.transitions), 0)).toBe(records.length);

    const res = await fetch(service.metricsUrl);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(metric(text, 'lattice_collector_consumer_lag')).toBe(0);
    expect(metric(text, 'lattice_collector_records_stored_total')).toBe(records.length);
    // Consumed counts every line read: the records, the three snapshots, the bad message.
    expect(metric(text, 'lattice_collector_records_consumed_total')).toBe(records.length + 3 + 1);
    expect(metric(text, 'lattice_collector_snapshots_stored_total')).toBe(3);
    expect(sink.stats).toMatchObject({ snapshotsSent: 3, snapshotsDropped: 0 });
    expect(text).toMatch(/lattice_collector_records_dead_lettered_total\{reason="malformed_json",group="svc-test"\} 1/);
    expect(text).toMatch(/lattice_collector_records_dead_lettered_total\{reason="oversized",group="svc-test"\} 0/);
    expect(metric(text, 'lattice_collector_store_retries_total')).toBeGreaterThanOrEqual(2);
    expect(metric(text, 'lattice_collector_insert_rows_count')).toBeGreaterThan(0);
    expect(metric(text, 'lattice_collector_insert_rows_sum')).toBe(records.length);
    expect(metric(text, 'lattice_collector_insert_duration_seconds_count')).toBeGreaterThan(0);
    expect(text).toContain('process_resident_memory_bytes');
    expect((await fetch(service.metricsUrl.replace('/metrics', '/nope'))).status).toBe(404);
    const ready = await fetch(service.metricsUrl.replace('/metrics', '/readyz'));
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ready: true, reasons: [], lag: 0 });
    expect(metric(text, 'lattice_collector_consuming')).toBe(1);
    // The producers of this process report beside the collector.
    expect(metric(text, 'lattice_producer_records_sent_total')).toBe(records.length);
    expect(metric(text, 'lattice_producer_records_dropped_total')).toBe(0);
    // Nothing asked for another address, so the endpoint is on loopback only.
    expect(service.metricsAddress).toBe('127.0.0.1');
  });

  it('stops gracefully on abort: features of the last records refreshed, endpoint closed', async () => {
    const producer = await transport.createProducer();
    const late = makeRecord({ run_id: 'svc-late', node: 0, node_seq: 0 });
    await producer.send(config.transport.topic, [{ key: 'svc-late/0', value: JSON.stringify(late) }]);
    await waitFor(async () => (await countTransitions(store, 'svc-late')) === 1, 10_000, 'the late record');
    abort.abort();
    await service.stopped;
    expect(service.collector.currentState).toBe('stopped');
    expect(await readFeatureRows(store, { runId: 'svc-late', level: 'node' })).toHaveLength(1);
    await expect(fetch(service.metricsUrl)).rejects.toThrow();
  });
});
