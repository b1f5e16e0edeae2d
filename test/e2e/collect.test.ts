/**
 * `lattice collect` as an operator runs it: a separate process in a Kafka consumer group, fed by
 * a producer elsewhere, observed through its Prometheus endpoint, stopped with SIGTERM, and its
 * store then holding exactly what was produced (bad records in the DLQ, counted by reason).
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../core/config.ts';
import { KafkaTransport } from '../../collector/transport/kafka.ts';
import { openStore } from '../../store/client.ts';
import { eventIds } from '../../store/transitions.ts';
import { requireKafkaBroker } from '../support/kafka.ts';
import { makeRecords } from '../support/records.ts';
import { waitFor } from '../support/transport-contract.ts';

const CLI = resolve(import.meta.dirname, '../../bin/lattice.js');

describe('lattice collect (end to end, real broker)', () => {
  it('ingests from its consumer group, serves metrics, stops on SIGTERM with everything stored', async () => {
    const brokers = await requireKafkaBroker();
    const suffix = randomUUID().slice(0, 8);
    const topic = `e2e.collect.${suffix}`;
    const dataDir = mkdtempSync(join(tmpdir(), 'lattice-collect-'));
    const env = { ...process.env, LATTICE_KAFKA_TOPIC: topic, LATTICE_KAFKA_DLQ_TOPIC: `${topic}.dlq`, LATTICE_LOG_LEVEL: 'warn' };
    const child = spawn(process.execPath, [CLI, 'collect', '--transport', 'kafka', '--kafka-brokers', brokers.join(','), '--data-dir', dataDir, '--group', `e2e-${suffix}`, '--metrics-port', '0'], { env });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
    try {
      await waitFor(() => /metrics at (http:\/\/\S+)/.test(stderr), 60_000, `collector start (stderr: ${stderr})`);
      const metricsUrl = /metrics at (http:\/\/\S+);/.exec(stderr)![1]!;

      const records = makeRecords(`e2e-collect-${suffix}`, 2_000);
      const transport = new KafkaTransport({ brokers, clientId: 'e2e-producer' });
      const producer = await transport.createProducer();
      await producer.send(topic, [...records.map((r) => ({ key: `${r.run_id}/${r.node}`, value: JSON.stringify(r) })), { key: 'bad', value: '{"truncated": ' }]);
      await producer.close();
      await transport.close();

      const scrape = async () => (await fetch(metricsUrl)).text();
      await waitFor(async () => /lattice_collector_records_consumed_total(?:\{[^}]*\})? 2001/.test(await scrape()), 60_000, 'metrics to show 2001 consumed');
      const metrics = await scrape();
      expect(metrics).toMatch(/lattice_collector_records_dead_lettered_total\{[^}]*reason="malformed_json"[^}]*\} 1/);
      expect(metrics).toMatch(/lattice_collector_insert_duration_seconds_count/);

      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(stderr).toMatch(/collector stopped/);

      const store = await openStore(loadConfig({ overrides: { store: { data_dir: dataDir } } }).store);
      try {
        expect(new Set(await eventIds(store, records[0]!.run_id))).toEqual(new Set(records.map((r) => r.event_id)));
      } finally {
        await store.close();
      }
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 180_000);
});
