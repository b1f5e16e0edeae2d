import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeMessage } from '../../collector/decode.ts';
import { createTraceSink } from '../../collector/kafka-trace-sink.ts';
import { KafkaTransport } from '../../collector/transport/kafka.ts';
import { requireKafkaBroker } from '../support/kafka.ts';
import { makeRecords } from '../support/records.ts';
import { unique, waitFor } from './pipeline-support.ts';

describe('trace sink of a node process (real Kafka broker)', () => {
  it('ships a node\'s records to the configured topic, keyed by run and node, in order', async () => {
    const brokers = await requireKafkaBroker();
    const topic = unique('node-sink.t');
    const spoolDir = mkdtempSync(join(tmpdir(), 'lattice-node-sink-'));
    const env = { LATTICE_KAFKA_BROKERS: brokers.join(','), LATTICE_KAFKA_TOPIC: topic, LATTICE_KAFKA_PARTITIONS: '2', LATTICE_PRODUCER_SPOOL_DIR: spoolDir, LATTICE_PRODUCER_METRICS_PORT: '0' };
    const records = makeRecords('node-sink-run', 900, 3);
    const sink = await createTraceSink({ node: 0, runId: 'node-sink-run' }, env);
    expect(sink.spoolDir).toBe(join(spoolDir, 'lattice-node-0'));
    for (let i = 0; i < records.length; i += 3) await sink.write(records.slice(i, i + 3));
    await waitFor(() => sink.stats.recordsSent === records.length, 30_000, 'the producer to send everything');
    // The node's producer metrics, on loopback.
    expect(sink.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const metrics = await (await fetch(sink.metricsUrl!)).text();
    expect(metrics).toContain('lattice_producer_records_sent_total{node="0"} 900');
    expect(metrics).toContain('lattice_producer_records_dropped_total{node="0"} 0');
    expect(metrics).toContain('lattice_producer_spool_bytes{node="0"} 0');
    await sink.close();
    expect(sink.stats).toMatchObject({ recordsSent: 900, recordsDropped: 0, gapsDeclared: 0 });

    const transport = new KafkaTransport({ brokers, clientId: 'lattice-node-sink-test' });
    try {
      const seen: { key: string | null; node: number; seq: number }[] = [];
      const consumer = await transport.createConsumer({ groupId: unique('node-sink.g'), topics: [topic], fromBeginning: true });
      await consumer.run(async (batch) => {
        for (const m of batch.messages) for (const d of decodeMessage(m.value, 64 * 1024)) if (d.ok && d.kind === 'transition') seen.push({ key: m.key, node: d.record.node, seq: d.record.node_seq });
      });
      await waitFor(() => seen.length >= records.length, 30_000, 'all records');
      await consumer.stop();
      expect(seen.length).toBe(records.length);
      for (const node of [0, 1, 2]) {
        const ofNode = seen.filter((s) => s.node === node);
        expect(new Set(ofNode.map((s) => s.key))).toEqual(new Set([`node-sink-run/${node}`]));
        expect(ofNode.map((s) => s.seq)).toEqual(Array.from({ length: 300 }, (_, i) => i));
      }
    } finally {
      await transport.close();
    }
  });
});
