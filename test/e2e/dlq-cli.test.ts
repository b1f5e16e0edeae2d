/**
 * `lattice dlq` as an operator uses it, against the real broker: records a collector could not
 * take (too large for its `record_bytes_max`) and a binary message are dead-lettered; `list`
 * shows them, `show --raw` gives back the exact bytes, and after the fix (a larger bound)
 * `replay --reason oversized` re-ingests them, so the store ends up with every record.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCollectorService } from '../../collector/run.ts';
import { KafkaTransport } from '../../collector/transport/kafka.ts';
import { loadConfig, type LatticeConfig } from '../../core/config.ts';
import { silentLogger } from '../../core/logging.ts';
import type { Store } from '../../store/client.ts';
import { countTransitions } from '../../store/transitions.ts';
import { requireKafkaBroker } from '../support/kafka.ts';
import { makeRecords } from '../support/records.ts';
import { openTestStore } from '../support/store.ts';
import { waitFor } from '../support/transport-contract.ts';

const CLI = resolve(import.meta.dirname, '../../bin/lattice.js');
const run = promisify(execFile);

describe('lattice dlq list | show | replay (real broker)', () => {
  let store: Store;
  let brokers: string[];
  let env: NodeJS.ProcessEnv;
  let config: (recordBytesMax: number) => LatticeConfig;
  const suffix = randomUUID().slice(0, 8);
  const topic = `e2e.dlq.${suffix}`;
  const dlqTopic = `${topic}.dlq`;
  const runId = `e2e-dlq-${suffix}`;

  beforeAll(async () => {
    brokers = await requireKafkaBroker();
    store = await openTestStore();
    env = { ...process.env, LATTICE_TRANSPORT: 'kafka', LATTICE_KAFKA_BROKERS: brokers.join(','), LATTICE_KAFKA_TOPIC: topic, LATTICE_KAFKA_DLQ_TOPIC: dlqTopic, LATTICE_LOG_LEVEL: 'warn' };
    config = (recordBytesMax) =>
      loadConfig({ overrides: { transport: { kind: 'kafka', brokers, topic, dlq_topic: dlqTopic, partitions: 2 }, collector: { group_id: `e2e-dlq-${suffix}`, record_bytes_max: recordBytesMax, flush_interval_ms: 50 } } });
  });
  afterAll(async () => {
    await store?.close();
  });

  const collectUntilDrained = async (recordBytesMax: number) => {
    const transport = new KafkaTransport({ brokers, clientId: 'e2e-dlq-collector', fetchMaxWaitMs: 100 });
    const service = await runCollectorService({ config: config(recordBytesMax), logger: silentLogger, store, transport, handleSignals: false, metricsPort: 0, featuresIntervalMs: 0 });
    await waitFor(async () => (await transport.lag(`e2e-dlq-${suffix}`, topic)) === 0, 60_000, 'the collector to drain');
    await service.stop();
    await transport.close();
    return service.stats;
  };

  it('lists, shows byte for byte, and replays after a fix', async () => {
    const records = makeRecords(runId, 40, 2);
    // Some records carry a long run of faulty nodes: too large for a 700-byte bound.
    const large = new Set([3, 17, 30]);
    const withLarge = records.map((r, i) => (large.has(i) ? { ...r, faulty_nodes: Array.from({ length: 200 }, (_, n) => n) } : r));
    const binary = Buffer.from([0x00, 0xff, 0x0a, 0xc3, 0x28, 0x0a, 0x7b]);
    const transport = new KafkaTransport({ brokers, clientId: 'e2e-dlq-producer' });
    await transport.ensureTopics([{ name: topic, partitions: 2 }, { name: dlqTopic, partitions: 1 }]);
    const producer = await transport.createProducer();
    await producer.send(topic, [...withLarge.map((r) => ({ key: `${r.run_id}/${r.node}`, value: JSON.stringify(r) })), { key: 'blob', value: binary }]);
    await producer.close();
    await transport.close();

    const first = await collectUntilDrained(700);
    expect(first.deadLettered).toBe(4);
    expect(await countTransitions(store, runId)).toBe(records.length - large.size);

    const listed = (await run(process.execPath, [CLI, 'dlq', 'list', '--json'], { env })).stdout.trim().split('\n').map((l) => JSON.parse(l) as { position: string; reason: string; source: { key: string | null }; bytes: number });
    expect(listed.map((l) => l.reason).sort()).toEqual(['invalid_utf8', 'oversized', 'oversized', 'oversized']);
    const table = (await run(process.execPath, [CLI, 'dlq', 'list', '--reason', 'oversized'], { env })).stdout;
    expect(table).toMatch(/3 dead letter\(s\)/);
    expect(table).toMatch(/record is \d+ bytes, more than record_bytes_max 700/);

    const blob = listed.find((l) => l.source.key === 'blob')!;
    const raw = await run(process.execPath, [CLI, 'dlq', 'show', blob.position, '--raw'], { env, encoding: 'buffer' });
    expect(Buffer.compare(raw.stdout, binary)).toBe(0);
    const shown = (await run(process.execPath, [CLI, 'dlq', 'show', blob.position], { env })).stdout;
    expect(shown).toMatch(/reason\s+invalid_utf8/);
    expect(shown).toMatch(/00000000  00 ff 0a c3 28 0a 7b/);

    const dry = (await run(process.execPath, [CLI, 'dlq', 'replay', '--reason', 'oversized', '--dry-run'], { env })).stdout;
    expect(dry).toMatch(/3 dead letter\(s\) selected; nothing sent/);
    const replayed = (await run(process.execPath, [CLI, 'dlq', 'replay', '--reason', 'oversized'], { env })).stdout;
    expect(replayed).toMatch(/replayed 3 dead letter\(s\)/);

    // The fix: a collector that takes larger records ingests the replayed ones.
    const second = await collectUntilDrained(64 * 1024);
    expect(second.deadLettered).toBe(0);
    expect(await countTransitions(store, runId)).toBe(records.length);

    const bad = await run(process.execPath, [CLI, 'dlq', 'replay'], { env }).catch((error: { stderr: string; code: number }) => error);
    expect((bad as { code: number }).code).toBe(1);
    expect((bad as { stderr: string }).stderr).toMatch(/select dead letters by position, by reason, or --all/);
  }, 180_000);
});
