/**
 * Fault: the broker is killed with SIGKILL while nodes produce, and comes back on the same ports
 * with the same data dir. Each "node" is the real node-process producer (collector/
 * kafka-trace-sink.ts, configured by LATTICE_* variables like a node process) writing its records
 * a few at a time on a timer, never waiting. Two groups of nodes produce through the same outage:
 *
 * - a large spool: every record must arrive, none dropped, no gap;
 * - a tiny spool (64 KiB): records are dropped, and the declared gaps must cover exactly the
 *   node_seq ranges that are missing.
 *
 * Checked on the topic itself (each node's records and gaps in node_seq order, nothing missing,
 * redeliveries counted) and through a collector into the store (produced = stored + gaps, no
 * duplicates, test/support/accounting.ts). Short by default (one 10 s kill); `npm run
 * test:faults` (LATTICE_FAULTS=full) adds a 120 s outage.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeMessage } from '../../collector/decode.ts';
import { createTraceSink, type NodeTraceSink } from '../../collector/kafka-trace-sink.ts';
import { runCollectorService } from '../../collector/run.ts';
import { KafkaTransport } from '../../collector/transport/kafka.ts';
import { loadConfig } from '../../core/config.ts';
import type { GapRecord } from '../../core/gap-record.ts';
import { silentLogger } from '../../core/logging.ts';
import type { TraceRecord } from '../../core/trace-schema.ts';
import { checkAccounting, producedOf, readDeadLetters } from '../support/accounting.ts';
import { FaultBroker } from '../support/fault-broker.ts';
import { makeRecords } from '../support/records.ts';
import { waitFor } from '../support/transport-contract.ts';

const FULL = process.env.LATTICE_FAULTS === 'full';
const NODES = 4;
/** Each node writes this many records every tick (a node emits a few per step). */
const PER_TICK = 3;
const TICK_MS = 5;

const cleanup: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const step of cleanup.reverse()) await step();
});

interface Group {
  readonly name: string;
  readonly runId: string;
  readonly sinks: NodeTraceSink[];
  readonly produced: TraceRecord[][];
  /** Per node: the records it will write, in order. */
  readonly pending: TraceRecord[][];
}

async function group(name: string, runId: string, env: NodeJS.ProcessEnv, recordsPerNode: number): Promise<Group> {
  const all = makeRecords(runId, recordsPerNode * NODES, NODES);
  const pending = Array.from({ length: NODES }, (_, node) => all.filter((r) => r.node === node));
  const sinks: NodeTraceSink[] = [];
  for (let node = 0; node < NODES; node++) sinks.push(await createTraceSink({ node, runId }, env));
  return { name, runId, sinks, produced: Array.from({ length: NODES }, () => []), pending };
}

/** Writes on a timer, as node processes do, never awaiting the sink. */
function startWriting(groups: readonly Group[]): { stop(): void } {
  const timer = setInterval(() => {
    for (const g of groups) {
      for (let node = 0; node < NODES; node++) {
        const next = g.pending[node]!.splice(0, PER_TICK);
        if (next.length === 0) continue;
        g.produced[node]!.push(...next);
        void g.sinks[node]!.write(next);
      }
    }
  }, TICK_MS);
  return { stop: () => clearInterval(timer) };
}

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

/** The topic as each node's sequence of records and gaps, in offset order. */
async function readNodes(brokers: string[], topic: string, runId: string) {
  const transport = new KafkaTransport({ brokers, clientId: 'faults-producer-reader' });
  try {
    const perNode = new Map<number, ({ kind: 'record'; seq: number; eventId: string } | { kind: 'gap'; gap: GapRecord })[]>();
    // Right after a restart the group coordinator may not be ready yet (its offsets topic is
    // created on first use): read again a few times.
    let messages: Awaited<ReturnType<KafkaTransport['readTopic']>> | undefined;
    for (let attempt = 1; messages === undefined; attempt++) {
      try {
        messages = await transport.readTopic(topic, { messagesMax: 10_000_000 });
      } catch (error) {
        if (attempt >= 10) throw error;
        await new Promise((r) => setTimeout(r, 1_000));
      }
    }
    for (const message of messages) {
      for (const d of decodeMessage(message.value, 1 << 20)) {
        if (!d.ok) throw new Error(`undecodable message on ${topic}: ${d.reason}`);
        if (d.kind === 'snapshot') continue;
        const item = d.kind === 'transition' ? { run: d.record.run_id, node: d.record.node, v: { kind: 'record' as const, seq: d.record.node_seq, eventId: d.record.event_id } } : { run: d.gap.run_id, node: d.gap.node, v: { kind: 'gap' as const, gap: d.gap } };
        if (item.run !== runId) continue;
        expect(message.key).toBe(`${runId}/${item.node}`);
        if (!perNode.has(item.node)) perNode.set(item.node, []);
        perNode.get(item.node)!.push(item.v);
      }
    }
    return perNode;
  } finally {
    await transport.close();
  }
}

/**
 * One node's stream: records in node_seq order (a redelivered record may repeat one already
 * seen), gaps exactly where records are missing. Returns the counts.
 */
function checkStream(items: readonly ({ kind: 'record'; seq: number; eventId: string } | { kind: 'gap'; gap: GapRecord })[], produced: number, label: string) {
  let next = 0;
  let redelivered = 0;
  let records = 0;
  let gapRecords = 0;
  let gaps = 0;
  const ranges: [number, number][] = [];
  for (const item of items) {
    if (item.kind === 'record') {
      if (item.seq < next) {
        redelivered++;
        continue;
      }
      expect(item.seq, `${label}: record after ${next - 1} must be ${next} (or be covered by a gap before it)`).toBe(next);
      next = item.seq + 1;
      records++;
    } else {
      if (item.gap.node_seq_last < next) {
        redelivered++;
        continue;
      }
      expect(item.gap.node_seq_first, `${label}: gap must start where the records stop`).toBe(next);
      next = item.gap.node_seq_last + 1;
      gapRecords += item.gap.records;
      gaps++;
      ranges.push([item.gap.node_seq_first, item.gap.node_seq_last]);
    }
  }
  expect(next, `${label}: the stream must reach the last record produced`).toBe(produced);
  return { records, gapRecords, gaps, redelivered, ranges };
}

describe('fault: the broker is down when the node starts, and the node restarts before it is back', () => {
  it('starts without the broker, leaves its records in the spool when it stops, and the next process delivers them first, in order', async () => {
    const broker = await FaultBroker.start();
    cleanup.push(() => broker.stop());
    const suffix = randomUUID().slice(0, 8);
    const topic = `faults.producer-restart.${suffix}`;
    const spoolDir = mkdtempSync(join(tmpdir(), 'lattice-fault-spool-'));
    cleanup.push(() => rmSync(spoolDir, { recursive: true, force: true }));
    const runId = `fault-prod-restart-${suffix}`;
    const env = {
      LATTICE_KAFKA_BROKERS: broker.brokers.join(','),
      LATTICE_KAFKA_TOPIC: topic,
      LATTICE_KAFKA_PARTITIONS: '2',
      LATTICE_LOG_LEVEL: 'error',
      LATTICE_PRODUCER_SPOOL_DIR: spoolDir,
      LATTICE_PRODUCER_SEND_TIMEOUT_MS: '3000',
      LATTICE_PRODUCER_RETRY_BACKOFF_MAX_MS: '1000',
      LATTICE_PRODUCER_CLOSE_TIMEOUT_MS: '500',
    };
    const records = makeRecords(runId, 10_000, 1);
    await broker.kill9();
    // The node process starts while the broker is away: creating its sink does not wait for it.
    const first = await createTraceSink({ node: 0, runId }, env);
    for (let i = 0; i < 5_000; i += 5) await first.write(records.slice(i, i + 5));
    await first.close();
    expect(first.stats.recordsSent).toBe(0);
    // The process stops (its close gave up on the broker): everything is in its spool.
    const second = await createTraceSink({ node: 0, runId }, { ...env, LATTICE_PRODUCER_CLOSE_TIMEOUT_MS: '120000' });
    expect(second.spoolDir).toBe(first.spoolDir);
    expect(second.stats.spoolRecords).toBe(5_000);
    for (let i = 5_000; i < 10_000; i += 5) await second.write(records.slice(i, i + 5));
    await broker.restart();
    await second.close();
    expect(second.stats.recordsSent).toBe(10_000);
    expect(second.stats.recordsReplayed).toBeGreaterThanOrEqual(5_000);
    const streams = await readNodes(broker.brokers, topic, runId);
    const counts = checkStream(streams.get(0) ?? [], 10_000, 'node 0');
    console.log(`producer restart while the broker is down: ${JSON.stringify({ produced: 10_000, ...counts, ranges: undefined })}`);
    expect(counts.records).toBe(10_000);
    expect(counts.gaps).toBe(0);
  }, 300_000);
});

describe('fault: broker kill -9 while nodes produce', () => {
  const outages = FULL ? [10_000, 120_000] : [10_000];
  for (const downMs of outages) {
    it(`broker down ≈${downMs / 1000} s (plus its restart): a large spool loses nothing; a tiny one declares gaps exactly covering what is missing`, async () => {
      const broker = await FaultBroker.start();
      cleanup.push(() => broker.stop());
      const suffix = randomUUID().slice(0, 8);
      const topic = `faults.producer.${suffix}`;
      const spoolRoot = mkdtempSync(join(tmpdir(), 'lattice-fault-spool-'));
      cleanup.push(() => rmSync(spoolRoot, { recursive: true, force: true }));
      const base = {
        LATTICE_KAFKA_BROKERS: broker.brokers.join(','),
        LATTICE_KAFKA_TOPIC: topic,
        LATTICE_KAFKA_PARTITIONS: '4',
        LATTICE_LOG_LEVEL: 'error',
        LATTICE_PRODUCER_SEND_TIMEOUT_MS: '4000',
        LATTICE_PRODUCER_RETRY_BACKOFF_MAX_MS: '1000',
        // Close waits for the broker to take everything (it is back by then).
        LATTICE_PRODUCER_CLOSE_TIMEOUT_MS: '120000',
      };
      // Enough records that every node is still writing through the outage and for a while after.
      const seconds = (downMs + 25_000) / 1000;
      const perNode = Math.ceil((seconds * 1000 * PER_TICK) / TICK_MS);
      const large = await group('large spool', `fault-prod-large-${suffix}`, { ...base, LATTICE_PRODUCER_SPOOL_DIR: join(spoolRoot, 'large') }, perNode);
      const tiny = await group('tiny spool', `fault-prod-tiny-${suffix}`, { ...base, LATTICE_PRODUCER_SPOOL_DIR: join(spoolRoot, 'tiny'), LATTICE_PRODUCER_SPOOL_BYTES_MAX: String(64 * 1024), LATTICE_PRODUCER_BUFFERED_RECORDS_MAX: '500' }, perNode);
      const groups = [large, tiny];
      const sinks = groups.flatMap((g) => g.sinks);

      const writer = startWriting(groups);
      await waitFor(() => sum(large.sinks.map((s) => s.stats.recordsSent)) > 2_000, 60_000, 'records to flow before the kill');
      const killedAt = Date.now();
      await broker.kill9();
      await new Promise((r) => setTimeout(r, downMs));
      await broker.restart();
      const backAt = Date.now();
      const outageMs = backAt - killedAt;
      // The producers resume on their own; wait for them to drain what they spooled.
      await waitFor(() => sinks.every((s) => s.stats.spoolRecords === 0 && s.stats.recordsBuffered < 5_000), 180_000, 'the spools to drain');
      const drainedMs = Date.now() - backAt;
      await waitFor(() => groups.every((g) => g.pending.every((p) => p.length === 0)), 120_000, 'every record to be written');
      writer.stop();
      for (const sink of sinks) await sink.close();

      const report: Record<string, unknown> = { outage_ms: outageMs, killed_for_ms: downMs, drained_after_back_ms: drainedMs };
      for (const g of groups) {
        const stats = g.sinks.map((s) => s.stats);
        const streams = await readNodes(broker.brokers, topic, g.runId);
        const produced = sum(g.produced.map((p) => p.length));
        let records = 0;
        let gapRecords = 0;
        let gaps = 0;
        let redelivered = 0;
        for (let node = 0; node < NODES; node++) {
          const counts = checkStream(streams.get(node) ?? [], g.produced[node]!.length, `${g.name} node ${node}`);
          records += counts.records;
          gapRecords += counts.gapRecords;
          gaps += counts.gaps;
          redelivered += counts.redelivered;
        }
        const dropped = sum(stats.map((s) => s.recordsDropped));
        report[g.name] = {
          produced,
          arrived_distinct: records,
          redelivered,
          gaps,
          gap_records: gapRecords,
          spooled: sum(stats.map((s) => s.recordsSpooled)),
          replayed: sum(stats.map((s) => s.recordsReplayed)),
          dropped,
          send_failures: sum(stats.map((s) => s.sendFailures)),
        };
        // The identity, on the topic: every record produced arrived or is inside a gap, once.
        expect(records + gapRecords).toBe(produced);
        expect(gapRecords).toBe(dropped);
        expect(gaps).toBe(sum(stats.map((s) => s.gapsDeclared)));
        expect(sum(stats.map((s) => s.recordsSpooled))).toBeGreaterThan(0);
      }
      const largeReport = report['large spool'] as { produced: number; arrived_distinct: number; gaps: number; replayed: number; spooled: number };
      expect(largeReport.gaps).toBe(0);
      expect(largeReport.arrived_distinct).toBe(largeReport.produced);
      expect(largeReport.replayed).toBe(largeReport.spooled);
      const tinyReport = report['tiny spool'] as { gaps: number; dropped: number };
      expect(tinyReport.dropped).toBeGreaterThan(0);
      // Contiguous drops coalesce: a few gaps per node, not one per record.
      expect(tinyReport.gaps).toBeLessThan(tinyReport.dropped / 10);

      // And through a collector into the store: produced = stored + gaps, no duplicates.
      const dataDir = mkdtempSync(join(tmpdir(), 'lattice-fault-prod-store-'));
      cleanup.push(() => rmSync(dataDir, { recursive: true, force: true }));
      const config = loadConfig({ env: { LATTICE_KAFKA_TOPIC: topic, LATTICE_KAFKA_DLQ_TOPIC: `${topic}.dlq`, LATTICE_COLLECTOR_GROUP: `faults-prod-${suffix}` }, overrides: { transport: { kind: 'kafka', brokers: broker.brokers }, store: { data_dir: dataDir } } });
      const service = await runCollectorService({ config, logger: silentLogger, handleSignals: false, metricsPort: 0, featuresIntervalMs: 0 });
      try {
        await waitFor(async () => (await service.transport.lag(config.collector.group_id, topic)) === 0, 180_000, 'the collector to drain the topic');
        const dead = await readDeadLetters(service.transport, `${topic}.dlq`).catch(() => ({ letters: [], other: 0 }));
        const accounting = await checkAccounting({ store: service.store, produced: producedOf(groups.flatMap((g) => g.produced.flat())), deadLetters: dead.letters });
        report.store = accounting.summary;
        console.log(`producer broker restart: ${JSON.stringify(report)}`);
        expect(accounting.deadLettered).toBe(0);
        expect(accounting.missing).toBe(0);
        expect(accounting.duplicates).toBe(0);
        expect(accounting.overlaps).toBe(0);
        expect(accounting.gapAccounted).toBe(tinyReport.dropped);
        expect(accounting.ok).toBe(true);
      } finally {
        await service.stop();
      }
    }, downMs + 600_000);
  }
});
