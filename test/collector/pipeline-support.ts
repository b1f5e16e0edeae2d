/** Shared pieces of the pipeline suites: unique names, a collector over the real store, waits. */
import { randomUUID } from 'node:crypto';
import { Collector, type RecordWriter } from '../../collector/collector.ts';
import { BatchingProducerSink } from '../../collector/producer-sink.ts';
import { storeRecordWriter } from '../../collector/store-writer.ts';
import type { Transport } from '../../collector/transport/transport.ts';
import { silentLogger } from '../../core/logging.ts';
import type { TraceRecord } from '../../core/trace-schema.ts';
import type { Store } from '../../store/client.ts';
import { queryRows } from '../../store/transitions.ts';
import { waitFor } from '../support/transport-contract.ts';

export { waitFor };

export const unique = (label: string) => `pipeline.${label}.${randomUUID().slice(0, 8)}`;

export interface PipelineNames {
  readonly topic: string;
  readonly dlqTopic: string;
  readonly groupId: string;
  readonly runId: string;
}

export async function freshPipeline(transport: Transport, label: string, partitions = 4): Promise<PipelineNames> {
  const names = { topic: unique(`${label}.t`), dlqTopic: unique(`${label}.dlq`), groupId: unique(`${label}.g`), runId: unique(`${label}.run`) };
  await transport.ensureTopics([
    { name: names.topic, partitions },
    { name: names.dlqTopic, partitions: 1 },
  ]);
  return names;
}

export function collectorFor(transport: Transport, store: Store, names: PipelineNames, wrap?: (w: RecordWriter) => RecordWriter, batchRowsMax = 1_000): Collector {
  const writer = storeRecordWriter(store);
  return new Collector({
    transport,
    writer: wrap ? wrap(writer) : writer,
    topic: names.topic,
    dlqTopic: names.dlqTopic,
    groupId: names.groupId,
    batchRowsMax,
    flushIntervalMs: 100,
    recordBytesMax: 64 * 1024,
    logger: silentLogger,
    retry: { initialDelayMs: 50, maxDelayMs: 200, multiplier: 2, attemptsMax: Number.POSITIVE_INFINITY },
  });
}

export async function produce(transport: Transport, topic: string, records: readonly TraceRecord[]): Promise<void> {
  const producer = await transport.createProducer();
  const sink = new BatchingProducerSink(producer, { topic, batchRecordsMax: 500, bufferedRecordsMax: 2_000 });
  // Small writes, as a node makes them: the sink batches them.
  for (let i = 0; i < records.length; i += 7) await sink.write(records.slice(i, i + 7));
  await sink.flush();
  await producer.close();
}

/** Rows physically in the table for a run, duplicates included (no FINAL). */
export async function rawRowCount(store: Store, runId: string): Promise<number> {
  const rows = await queryRows<{ n: string }>(store, `SELECT count() AS n FROM ${store.table('transitions')} WHERE run_id = {run_id:String}`, { run_id: runId });
  return Number(rows[0]?.n ?? 0);
}

export async function drained(transport: Transport, names: PipelineNames): Promise<boolean> {
  return (await transport.lag(names.groupId, names.topic)) === 0;
}
