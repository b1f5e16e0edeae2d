/**
 * Fault: the store misbehaves while records keep arriving. The store is `lattice store serve` (a
 * separate process: ClickHouse's HTTP interface over the embedded engine) with its fault control
 * endpoint; the collector reaches it through @clickhouse/client's HTTP path, as it would a
 * ClickHouse server, and reads from the real broker. For each fault — connections refused,
 * requests that hang, HTTP 500 TOO_MANY_PARTS, a bare HTTP 503 — a producer writes throughout,
 * and afterwards every record is stored or accounted for, and none went to the dead-letter
 * topic: these are outages, not bad data. Short by default; LATTICE_FAULTS=full holds each fault
 * for 30 s.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BatchingProducerSink } from '../../collector/producer-sink.ts';
import { runCollectorService } from '../../collector/run.ts';
import { KafkaTransport } from '../../collector/transport/kafka.ts';
import { loadConfig } from '../../core/config.ts';
import { silentLogger } from '../../core/logging.ts';
import { openStore, type Store } from '../../store/client.ts';
import { checkAccounting, producedOf, readDeadLetters } from '../support/accounting.ts';
import { requireKafkaBroker } from '../support/kafka.ts';
import { makeRecord } from '../support/records.ts';
import { waitFor } from '../support/transport-contract.ts';

const CLI = resolve(import.meta.dirname, '../../bin/lattice.js');
const FULL = process.env.LATTICE_FAULTS === 'full';
const FAULT_MS = FULL ? 30_000 : 5_000;
const NODES = 6;
const RECORDS_PER_S = 2_000;

interface Case {
  readonly label: string;
  readonly fault: Record<string, unknown>;
}

const CASES: readonly Case[] = [
  { label: 'connections refused', fault: { mode: 'refuse' } },
  { label: 'requests hang', fault: { mode: 'hang' } },
  { label: 'HTTP 500 TOO_MANY_PARTS (252)', fault: { mode: 'error', code: 252, what: 'insert' } },
  { label: 'HTTP 503 (no ClickHouse body)', fault: { mode: 'error', status: 503 } },
];

describe('fault: the store refuses, hangs, or answers 5xx while records arrive', () => {
  let front: ChildProcess;
  let url = '';
  let controlUrl = '';
  let store: Store;
  let brokers: string[];
  const results: Record<string, unknown>[] = [];

  beforeAll(async () => {
    brokers = await requireKafkaBroker();
    const dataDir = mkdtempSync(join(tmpdir(), 'lattice-fault-store-'));
    front = spawn(process.execPath, [CLI, 'store', 'serve', '--port', '0', '--control-port', '0', '--data-dir', dataDir], { env: { ...process.env, LATTICE_LOG_LEVEL: 'warn' } });
    let stdout = '';
    front.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    await waitFor(() => /fault control (http:\/\/\S+)\/fault/.test(stdout), 60_000, `lattice store serve to start (stdout: ${stdout})`);
    url = /lattice store serve: (http:\/\/\S+) /.exec(stdout)![1]!;
    controlUrl = /fault control (http:\/\/\S+)\/fault/.exec(stdout)![1]!;
    store = await openStore(loadConfig({ overrides: { store: { url } } }).store);
  });
  afterAll(async () => {
    await store?.close();
    if (front && front.exitCode === null) {
      front.kill('SIGTERM');
      await new Promise((done) => front.once('exit', done));
    }
    if (results.length > 0) console.log(`store faults (${FAULT_MS / 1000} s each):\n${results.map((r) => JSON.stringify(r)).join('\n')}`);
  });

  const setFault = async (spec: Record<string, unknown>) => {
    const res = await fetch(`${controlUrl}/fault`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
    expect(res.status, await res.clone().text()).toBe(200);
  };

  for (const c of CASES) {
    it(`${c.label} for ${FAULT_MS / 1000} s: produced = stored + gaps, nothing dead-lettered, no duplicates`, async () => {
      const suffix = randomUUID().slice(0, 8);
      const topic = `faults.store.${suffix}`;
      const dlqTopic = `${topic}.dlq`;
      const group = `faults-store-${suffix}`;
      const runId = `fault-store-${suffix}`;
      // The collector reaches the store over HTTP; a hung request fails after 3 s and is retried.
      const config = loadConfig({ overrides: { store: { url, request_timeout_ms: 3_000 }, transport: { kind: 'kafka', brokers, topic, dlq_topic: dlqTopic, partitions: 3 }, collector: { group_id: group, flush_interval_ms: 100, batch_rows_max: 2_000, stall_after_ms: 1_000 } } });
      const transport = new KafkaTransport({ brokers, clientId: `faults-store-${suffix}`, fetchMaxWaitMs: 100 });
      const service = await runCollectorService({ config, logger: silentLogger, transport, handleSignals: false, metricsPort: 0, featuresIntervalMs: 0 });
      const producer = await transport.createProducer();
      const sink = new BatchingProducerSink(producer, { topic, batchRecordsMax: 500, lingerMs: 20 });
      const produced: ReturnType<typeof makeRecord>[] = [];
      const seq = new Array<number>(NODES).fill(0);
      const produceFor = async (ms: number) => {
        const until = Date.now() + ms;
        while (Date.now() < until) {
          const batch = Array.from({ length: RECORDS_PER_S / 20 }, (_, i) => {
            const node = i % NODES;
            return makeRecord({ run_id: runId, node, node_seq: seq[node]!++ });
          });
          produced.push(...batch);
          await sink.write(batch);
          await new Promise((r) => setTimeout(r, 50));
        }
      };
      let readyDuring: { ready: boolean; reasons: string[] } | undefined;
      try {
        await produceFor(1_000);
        await setFault({ ...c.fault, duration_ms: FAULT_MS });
        const probe = (async () => {
          await new Promise((r) => setTimeout(r, Math.min(FAULT_MS / 2, 4_000)));
          readyDuring = (await (await fetch(service.metricsUrl.replace('/metrics', '/readyz'))).json()) as { ready: boolean; reasons: string[] };
        })();
        await produceFor(FAULT_MS + 1_000);
        await probe;
        await sink.flush();
        await waitFor(async () => (await transport.lag(group, topic)) === 0, FAULT_MS + 120_000, 'the collector to catch up once the store is back');
        await service.stop();
        const { letters: deadLetters } = await readDeadLetters(transport, dlqTopic);
        const report = await checkAccounting({ store, produced: producedOf(produced), deadLetters });
        results.push({ fault: c.label, duration_s: FAULT_MS / 1000, produced: report.produced, stored: report.stored, dead_lettered: report.deadLettered, gaps: report.gapAccounted, missing: report.missing, duplicates: report.duplicates, store_retries: service.stats.storeRetries, not_ready_during: readyDuring?.ready === false });
        expect(service.stats.storeRetries, 'the collector saw the store fail and retried').toBeGreaterThan(0);
        expect(readyDuring?.ready, `readiness during the fault: ${JSON.stringify(readyDuring)}`).toBe(false);
        expect(report.deadLettered, 'transient store errors are retried, never dead-lettered').toBe(0);
        expect(report.missing).toBe(0);
        expect(report.duplicates).toBe(0);
        expect(report.overlaps).toBe(0);
        expect(report.stored).toBe(produced.length);
        expect(report.nodes.every((n) => n.inOrder)).toBe(true);
        expect(report.ok, report.summary).toBe(true);
      } finally {
        await setFault({ mode: 'none' }).catch(() => undefined);
        await producer.close().catch(() => undefined);
        await service.stop().catch(() => undefined);
        await transport.close();
      }
    }, FAULT_MS + 200_000);
  }
});
