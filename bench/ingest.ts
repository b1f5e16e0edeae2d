/**
 * Ingest benchmark: end-to-end records/s from the producer sink to rows in ClickHouse, through
 * the real Kafka broker and through the in-process transport, next to the engine's raw insert
 * rate measured in the same run on the same rows (the ceiling: pre-serialised NDJSON straight
 * into the table, no transport, no validation). Peak RSS covers the whole run.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Collector } from '../collector/collector.ts';
import { BatchingProducerSink } from '../collector/producer-sink.ts';
import { storeRecordWriter } from '../collector/store-writer.ts';
import { InProcessTransport } from '../collector/transport/in-process.ts';
import { KafkaTransport } from '../collector/transport/kafka.ts';
import type { Transport } from '../collector/transport/transport.ts';
import { loadConfig } from '../core/config.ts';
import { silentLogger } from '../core/logging.ts';
import { eventIdOf, PHASES, TRACE_SCHEMA_VERSION, type TraceRecord } from '../core/trace-schema.ts';
import { openStore, type Store } from '../store/client.ts';
import { migrate } from '../store/migrations.ts';
import { countTransitions } from '../store/transitions.ts';

export interface IngestBenchOptions {
  readonly records?: number;
  readonly nodes?: number;
  /** Rows per insert, for the raw baseline and the collector alike. */
  readonly batchRowsMax?: number;
  readonly partitions?: number;
  readonly brokers?: readonly string[];
  readonly compression?: 'gzip' | 'none';
  readonly timeoutMs?: number;
}

export async function benchIngest(options: IngestBenchOptions = {}): Promise<Record<string, number | string>> {
  const n = options.records ?? 200_000;
  const batchRowsMax = options.batchRowsMax ?? 50_000;
  const partitions = options.partitions ?? 4;
  const timeoutMs = options.timeoutMs ?? 60_000;
  const out: Record<string, number | string> = { records: n, batch_rows_max: batchRowsMax, partitions };
  const dir = mkdtempSync(join(tmpdir(), 'lattice-bench-ingest-'));
  const store = await openStore(loadConfig({ overrides: { store: { data_dir: dir, database: 'bench' } } }).store);
  try {
    await migrate(store);

    // The ceiling: the same kind of rows, pre-serialised, inserted in batches of batchRowsMax.
    // Measured before each pipeline (this machine is shared; load drifts) and averaged.
    const nodes = options.nodes ?? 7;
    const rawRates = [await rawInsertRate(store, n, nodes, batchRowsMax, 'bench-raw-1')];
    out.engine_raw_insert_rows_per_s = rawRates[0]!;
    out.engine_client_insert_rows_per_s = await clientInsertRate(store, n, nodes, batchRowsMax);
    // Peak RSS never goes down, so reading it after each stage shows which stage set it.
    out.peak_rss_mb_after_baselines = peakRssMb();

    const embedded = await pipelineRate(store, new InProcessTransport({ defaultPartitions: partitions, batchMessagesMax: batchRowsMax }), 'bench-embedded', n, options, timeoutMs);
    out.ingest_events_per_s_embedded = embedded.rate;
    out.embedded_inserts = embedded.inserts;
    out.peak_rss_mb_after_embedded = peakRssMb();


    const brokers = options.brokers ?? (process.env.LATTICE_KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
    const kafka = new KafkaTransport({ brokers, clientId: 'lattice-bench', compression: options.compression ?? 'gzip', connectionTimeoutMs: 2_000, partitionsConsumedConcurrently: 2, fetchMaxWaitMs: 100, producerRetryMs: 5_000 });
    let kafkaReady = true;
    try {
      await kafka.ensureTopics([{ name: 'bench.probe', partitions: 1 }]);
    } catch (error) {
      kafkaReady = false;
      out.kafka_skipped_reason = `no Kafka broker at ${brokers.join(',')}: ${(error as Error).message.split('.')[0]}`;
      await kafka.close();
    }
    if (kafkaReady) {
      rawRates.push(await rawInsertRate(store, n, nodes, batchRowsMax, 'bench-raw-2'));
      const viaKafka = await pipelineRate(store, kafka, 'bench-kafka', n, options, timeoutMs);
      out.ingest_events_per_s_kafka = viaKafka.rate;
      out.kafka_inserts = viaKafka.inserts;
      out.kafka_compression = options.compression ?? 'gzip';
    }
    const raw = Math.round(rawRates.reduce((a, b) => a + b, 0) / rawRates.length);
    out.engine_raw_insert_rows_per_s = raw;
    out.engine_raw_insert_runs = rawRates.join(',');
    out.ratio_embedded_vs_raw = round2(embedded.rate / raw);
    out.ratio_embedded_vs_client_insert = round2(embedded.rate / (out.engine_client_insert_rows_per_s as number));
    if (typeof out.ingest_events_per_s_kafka === 'number') {
      out.ratio_kafka_vs_raw = round2(out.ingest_events_per_s_kafka / raw);
      out.ratio_kafka_vs_client_insert = round2(out.ingest_events_per_s_kafka / (out.engine_client_insert_rows_per_s as number));
    }
    out.peak_rss_mb = peakRssMb();
    return out;
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Pre-serialised NDJSON bodies of batchRowsMax rows, inserted one after the other; only the
 * inserts are timed. Each body is made just before its insert and dropped after it, so the
 * baseline holds one batch at a time, not the whole run (which would dominate the peak RSS).
 */
async function rawInsertRate(store: Store, n: number, nodes: number, batchRowsMax: number, runId: string): Promise<number> {
  let insertMs = 0;
  for (let i = 0; i < n; i += batchRowsMax) {
    let text = '';
    for (let j = i; j < Math.min(n, i + batchRowsMax); j++) text += JSON.stringify(syntheticRecord(runId, j, nodes)) + '\n';
    const body = Buffer.from(text);
    const started = performance.now();
    const result = await store.client.exec({ query: `INSERT INTO ${store.table('transitions')} FORMAT JSONEachRow`, values: Readable.from([body], { objectMode: false }) });
    result.stream.resume();
    insertMs += performance.now() - started;
  }
  const rate = Math.round(n / (insertMs / 1_000));
  const stored = await countTransitions(store, runId);
  if (stored !== n) throw new Error(`raw insert baseline stored ${stored} rows, expected ${n}`);
  return rate;
}

/** The store's generic path, for comparison: client.insert of pre-built row objects (one batch held at a time, inserts timed). */
async function clientInsertRate(store: Store, n: number, nodes: number, batchRowsMax: number): Promise<number> {
  let insertMs = 0;
  for (let i = 0; i < n; i += batchRowsMax) {
    const values = Array.from({ length: Math.min(batchRowsMax, n - i) }, (_, k) => syntheticRecord('bench-client', i + k, nodes));
    const started = performance.now();
    await store.client.insert({ table: store.table('transitions'), values, format: 'JSONEachRow' });
    insertMs += performance.now() - started;
  }
  return Math.round(n / (insertMs / 1_000));
}

/** Produces n records through the sink while a collector stores them; records/s until all are in. */
async function pipelineRate(store: Store, transport: Transport, label: string, n: number, options: IngestBenchOptions, timeoutMs: number): Promise<{ rate: number; inserts: number }> {
  const suffix = `${label}.${process.pid}.${Math.round(performance.now())}`;
  const topic = `${suffix}.transitions`;
  const runId = `${label}-${Math.round(performance.now())}`;
  await transport.ensureTopics([
    { name: topic, partitions: options.partitions ?? 4 },
    { name: `${topic}.dlq`, partitions: 1 },
  ]);
  const nodes = options.nodes ?? 7;
  const collector = new Collector({
    transport,
    writer: storeRecordWriter(store),
    topic,
    dlqTopic: `${topic}.dlq`,
    groupId: `${suffix}.group`,
    batchRowsMax: options.batchRowsMax ?? 50_000,
    flushIntervalMs: 200,
    recordBytesMax: 64 * 1024,
    logger: silentLogger,
    consumers: 2,
  });
  await collector.start();
  const producer = await transport.createProducer();
  try {
    const started = performance.now();
    const sink = new BatchingProducerSink(producer, { topic, batchRecordsMax: 10_000, bufferedRecordsMax: 40_000, lingerMs: 5 });
    // A cluster makes its records as it runs and writes a handful per step.
    for (let i = 0; i < n; i += 50) {
      const step: TraceRecord[] = [];
      for (let j = i; j < Math.min(n, i + 50); j++) step.push(syntheticRecord(runId, j, nodes));
      await sink.write(step);
    }
    await sink.flush();
    while (collector.stats.stored < n) {
      if (performance.now() - started > timeoutMs) throw new Error(`${label}: only ${collector.stats.stored} of ${n} records stored after ${timeoutMs} ms`);
      await sleep(5);
    }
    const seconds = (performance.now() - started) / 1_000;
    const stored = await countTransitions(store, runId);
    if (stored !== n) throw new Error(`${label}: ${stored} distinct rows stored, expected ${n}`);
    return { rate: Math.round(n / seconds), inserts: collector.stats.inserts };
  } finally {
    await producer.close().catch(() => undefined);
    await collector.stop();
    await transport.close();
  }
}

const HASH_A = 'a'.repeat(64);
const HASH_B = 'b'.repeat(64);

/** The i-th of a run's plausible PBFT records: phases in protocol order, a skewed node, some mismatches. */
function syntheticRecord(runId: string, i: number, nodes: number): TraceRecord {
  const node = i % nodes;
  const nodeSeq = Math.floor(i / nodes);
  const phase = PHASES.pbft[nodeSeq % 6]!;
  const t0 = 1_767_225_600_000_000;
  return {
    schema_version: TRACE_SCHEMA_VERSION,
    run_id: runId,
    event_id: eventIdOf(runId, node, nodeSeq),
    node,
    node_seq: nodeSeq,
    protocol: 'pbft',
    phase,
    view: Math.floor(nodeSeq / 10_000),
    seq: Math.floor(nodeSeq / 6),
    leader: 0,
    ts_us: t0 + nodeSeq * 250,
    node_clock_us: t0 + nodeSeq * 250 + (node === 3 ? 1_500 : 0),
    msgs_sent: phase === 'prepare' || phase === 'commit' ? nodes - 1 : 0,
    msgs_received: 1,
    retransmissions: nodeSeq % 97 === 0 ? 1 : 0,
    batch_size: phase === 'execute' ? 4 : 0,
    deps_count: 0,
    latency_us: phase === 'execute' ? 800 + (nodeSeq % 400) : null,
    byzantine_altered: 0,
    state_hash: HASH_A,
    shadow_hash: nodeSeq % 1_000 === 999 ? HASH_B : HASH_A,
    faults: node === 3 ? ['clock_skew'] : [],
    faulty_nodes: node === 3 ? [3] : [],
    recovering: false,
  };
}

const peakRssMb = () => Math.round(process.resourceUsage().maxRSS / 1024);
const round2 = (x: number) => Math.round(x * 100) / 100;
