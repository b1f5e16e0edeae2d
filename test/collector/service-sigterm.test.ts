/**
 * `lattice collect` as a process: a real SIGTERM stops it gracefully — everything consumed is
 * stored and committed, features are refreshed, the store is closed, the exit code is 0.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { KafkaTransport } from '../../collector/transport/kafka.ts';
import { loadConfig } from '../../core/config.ts';
import { openStore } from '../../store/client.ts';
import { readFeatureRows } from '../../store/features.ts';
import { countTransitions } from '../../store/transitions.ts';
import { requireKafkaBroker } from '../support/kafka.ts';
import { makeRecords } from '../support/records.ts';
import { freshPipeline, produce, waitFor } from './pipeline-support.ts';

describe('collector service process (real Kafka broker)', () => {
  it('stops gracefully on SIGTERM with everything stored and committed', async () => {
    const brokers = await requireKafkaBroker();
    const transport = new KafkaTransport({ brokers, clientId: 'lattice-sigterm-test' });
    try {
      const names = await freshPipeline(transport, 'sigterm', 2);
      const records = makeRecords(names.runId, 1_000, 4);
      await produce(transport, names.topic, records);
      const dataDir = mkdtempSync(join(tmpdir(), 'lattice-sigterm-'));
      const child = spawn(process.execPath, ['bin/run-ts.js', 'test/collector/service-child.ts'], {
        env: {
          ...process.env,
          LATTICE_TRANSPORT: 'kafka',
          LATTICE_KAFKA_BROKERS: brokers.join(','),
          LATTICE_KAFKA_TOPIC: names.topic,
          LATTICE_KAFKA_DLQ_TOPIC: names.dlqTopic,
          LATTICE_COLLECTOR_GROUP: names.groupId,
          LATTICE_DATA_DIR: dataDir,
          LATTICE_LOG_LEVEL: 'info',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<string>((resolve) => child.once('exit', (code, signal) => resolve(`code ${code} signal ${signal}`)));

      await waitFor(async () => (await transport.lag(names.groupId, names.topic)) === 0, 45_000, `the child to commit everything (stderr: ${stderr.slice(-500)})`);
      child.kill('SIGTERM');
      expect(await exited, stderr.slice(-2_000)).toBe('code 0 signal null');
      expect(stderr).toContain('signal received, shutting down');
      const last = JSON.parse(stdout.trim().split('\n').at(-1)!) as { stopped: boolean; stats: { stored: number } };
      expect(last.stopped).toBe(true);
      expect(last.stats.stored).toBeGreaterThanOrEqual(records.length);

      // The child closed its embedded store, so this process can open it.
      const store = await openStore(loadConfig({ overrides: { store: { data_dir: dataDir } } }).store);
      try {
        expect(await countTransitions(store, names.runId)).toBe(records.length);
        const features = await readFeatureRows<{ transitions: string }>(store, { runId: names.runId, level: 'cluster' });
        expect(features.reduce((sum, row) => sum + Number(row.transitions), 0)).toBe(records.length);
      } finally {
        await store.close();
      }
    } finally {
      await transport.close();
    }
  });
});
