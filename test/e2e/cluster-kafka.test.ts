/**
 * Real processes all the way: `lattice cluster up --trace kafka` starts PBFT replicas whose
 * producers ship every transition to the Kafka topic, `lattice cluster load` drives them, and a
 * collector ingests the topic into the store. Nothing may be missing: each node's records arrive
 * with node_seq 0..n-1, no gaps.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../core/config.ts';
import { silentLogger } from '../../core/logging.ts';
import { runCollectorService } from '../../collector/run.ts';
import { queryRows } from '../../store/transitions.ts';
import { requireKafkaBroker } from '../support/kafka.ts';

const run = promisify(execFile);
const CLI = resolve(import.meta.dirname, '../../bin/lattice.js');

describe('real-process cluster → Kafka → collector → store', () => {
  it('stores every transition of every node, without gaps', async () => {
    const brokers = await requireKafkaBroker();
    const suffix = randomUUID().slice(0, 8);
    const topic = `e2e.cluster.${suffix}`;
    const workDir = mkdtempSync(join(tmpdir(), 'lattice-cluster-'));
    const env = { ...process.env, LATTICE_LOG_LEVEL: 'warn', LATTICE_KAFKA_TOPIC: topic, LATTICE_KAFKA_BROKERS: brokers.join(',') };
    const lattice = (args: string[]) => run(process.execPath, [CLI, ...args], { env, cwd: workDir });

    const up = JSON.parse((await lattice(['cluster', 'up', '--protocol', 'pbft', '--trace', 'kafka', '--json'])).stdout) as { run_id: string };
    try {
      const load = JSON.parse((await lattice(['cluster', 'load', '--duration-ms', '1500', '--clients', '4', '--json'])).stdout) as { completed: number; errors: number };
      expect(load.completed).toBeGreaterThan(20);
      expect(load.errors).toBe(0);
    } finally {
      await lattice(['cluster', 'down', '--json']);
    }

    const config = loadConfig({ env: { LATTICE_KAFKA_TOPIC: topic, LATTICE_COLLECTOR_GROUP: `e2e-${suffix}` }, overrides: { transport: { kind: 'kafka', brokers }, store: { data_dir: join(workDir, 'chdb') } } });
    const service = await runCollectorService({ config, logger: silentLogger, handleSignals: false, metricsPort: 0, featuresIntervalMs: 0 });
    try {
      let lag = Number.POSITIVE_INFINITY;
      for (let i = 0; i < 300 && lag > 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        lag = await service.transport.lag(config.collector.group_id, topic);
      }
      expect(lag).toBe(0);
      const perNode = await queryRows<{ node: number; n: string; max_seq: string; min_seq: string }>(
        service.store,
        `SELECT node, count() AS n, max(node_seq) AS max_seq, min(node_seq) AS min_seq FROM ${service.store.table('transitions')} FINAL WHERE run_id = {run:String} GROUP BY node ORDER BY node`,
        { run: up.run_id },
      );
      expect(perNode.map((r) => Number(r.node))).toEqual([0, 1, 2, 3]);
      for (const row of perNode) {
        expect(Number(row.min_seq)).toBe(0);
        expect(Number(row.n), `node ${row.node}`).toBe(Number(row.max_seq) + 1);
        expect(Number(row.n)).toBeGreaterThan(20);
      }
      expect(service.stats.deadLettered).toBe(0);
    } finally {
      await service.stop();
    }
  }, 180_000);
});
