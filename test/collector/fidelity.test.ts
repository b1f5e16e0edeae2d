/**
 * Data in equals data out, or is accounted for: each case is input that the collector used to
 * change silently or that took good records down with it, run through the real collector into
 * the real embedded engine, with dead letters read back from the transport.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertBisecting } from '../../collector/bisect.ts';
import { Collector } from '../../collector/collector.ts';
import { parseDeadLetter, type DeadLetter } from '../../collector/dead-letter.ts';
import { recordKey } from '../../collector/producer-sink.ts';
import { storeRecordWriter } from '../../collector/store-writer.ts';
import { InProcessTransport } from '../../collector/transport/in-process.ts';
import { LatticeError } from '../../core/errors.ts';
import { makeGapRecord } from '../../core/gap-record.ts';
import { silentLogger } from '../../core/logging.ts';
import type { TraceRecord } from '../../core/trace-schema.ts';
import type { Store } from '../../store/client.ts';
import { gapsOf } from '../../store/gaps.ts';
import { migrate } from '../../store/migrations.ts';
import { countTransitions, eventIds, queryRows } from '../../store/transitions.ts';
import { makeRecord, makeRecords } from '../support/records.ts';
import { makeSnapshot } from '../support/snapshots.ts';
import { snapshotsOf } from '../../store/snapshots.ts';
import { openTestStore } from '../support/store.ts';
import { waitFor } from '../support/transport-contract.ts';

describe('fidelity: nothing changed or lost silently (real collector, real engine)', () => {
  let store: Store;
  let transport: InProcessTransport;
  const collectors: Collector[] = [];
  beforeAll(async () => {
    store = await openTestStore();
    await migrate(store);
    transport = new InProcessTransport({ defaultPartitions: 2 });
  });
  afterAll(async () => {
    for (const c of collectors) await c.stop().catch(() => undefined);
    await transport?.close();
    await store?.close();
  });

  /** A fresh topic pair, a collector on it, and the messages sent; resolves once all are handled. */
  async function ingest(label: string, messages: { key: string | null; value: string | Buffer }[]): Promise<{ collector: Collector; letters: DeadLetter[]; runId: string; topic: string }> {
    const id = randomUUID().slice(0, 8);
    const topic = `fidelity.${label}.${id}`;
    const dlqTopic = `${topic}.dlq`;
    await transport.ensureTopics([
      { name: topic, partitions: 2 },
      { name: dlqTopic, partitions: 1 },
    ]);
    const collector = new Collector({ transport, writer: storeRecordWriter(store), topic, dlqTopic, groupId: `${topic}.g`, batchRowsMax: 1_000, flushIntervalMs: 20, recordBytesMax: 64 * 1024, logger: silentLogger });
    collectors.push(collector);
    await collector.start();
    const producer = await transport.createProducer();
    await producer.send(topic, messages);
    await waitFor(async () => (await transport.lag(`${topic}.g`, topic)) === 0, 30_000, 'the collector to handle every message');
    const letters = transport.messages(dlqTopic).map((m) => parseDeadLetter(m)!);
    return { collector, letters, runId: id, topic };
  }
  const message = (record: TraceRecord) => ({ key: recordKey(record), value: JSON.stringify(record) });

  it('counters above 2^32 are stored exactly (the schema allows up to 2^53 - 1)', async () => {
    const runId = `big-${randomUUID().slice(0, 8)}`;
    const big = 2 ** 40 + 7;
    const top = Number.MAX_SAFE_INTEGER;
    const record = makeRecord({ run_id: runId, msgs_sent: big, msgs_received: top, retransmissions: 2 ** 33, batch_size: 2 ** 32, deps_count: 2 ** 32 + 1, view: top, seq: top });
    const { letters } = await ingest('big', [message(record)]);
    expect(letters).toEqual([]);
    const [row] = await queryRows<Record<string, number>>(store, `SELECT msgs_sent, msgs_received, retransmissions, batch_size, deps_count, view, seq FROM ${store.table('transitions')} FINAL WHERE run_id = {r:String} SETTINGS output_format_json_quote_64bit_integers = 0`, { r: runId });
    expect(row).toEqual({ msgs_sent: big, msgs_received: top, retransmissions: 2 ** 33, batch_size: 2 ** 32, deps_count: 2 ** 32 + 1, view: top, seq: top });
  });

  it('a record with a known event id: identical contents are skipped, different contents are a conflict dead letter with both versions', async () => {
    const runId = `dup-${randomUUID().slice(0, 8)}`;
    const original = makeRecord({ run_id: runId, node: 1, node_seq: 5, msgs_sent: 3 });
    const first = await ingest('dup-a', [message(original)]);
    expect(first.letters).toEqual([]);
    const changed = { ...original, msgs_sent: 4 };
    // Redelivered as it was, changed, and changed twice inside one batch.
    const later = makeRecord({ run_id: runId, node: 1, node_seq: 6 });
    const second = await ingest('dup-b', [message(original), message(changed), message(later), message({ ...later, phase: 'prepare' })]);
    expect(second.collector.stats.duplicatesSkipped).toBe(1);
    expect(second.collector.stats.conflicts).toBe(2);
    expect(second.letters.map((l) => l.reason)).toEqual(['conflict', 'conflict']);
    const againstStore = second.letters.find((l) => JSON.parse(l.value.toString()).node_seq === 5)!;
    expect(JSON.parse(againstStore.value.toString())).toEqual(changed);
    expect(JSON.parse(againstStore.stored!)).toEqual(original);
    const inBatch = second.letters.find((l) => JSON.parse(l.value.toString()).node_seq === 6)!;
    expect(JSON.parse(inBatch.stored!)).toEqual(later);
    // The store keeps the first version of each, once.
    const rows = await queryRows<{ node_seq: number; msgs_sent: number; phase: string }>(store, `SELECT node_seq, msgs_sent, phase FROM ${store.table('transitions')} WHERE run_id = {r:String} ORDER BY node_seq SETTINGS output_format_json_quote_64bit_integers = 0`, { r: runId });
    expect(rows).toEqual([
      { node_seq: 5, msgs_sent: 3, phase: 'commit' },
      { node_seq: 6, msgs_sent: 3, phase: 'commit' },
    ]);
  });

  it('one collector reading on: the store is asked once per node, not per batch, and a later conflicting repeat is still caught', async () => {
    const id = randomUUID().slice(0, 8);
    const topic = `fidelity.steady.${id}`;
    await transport.ensureTopics([{ name: topic, partitions: 1 }, { name: `${topic}.dlq`, partitions: 1 }]);
    const calls = { versions: 0, maxima: 0 };
    const base = storeRecordWriter(store);
    const writer = { ...base, storedVersions: (r: Parameters<typeof base.storedVersions>[0]) => (calls.versions++, base.storedVersions(r)), storedMaxNodeSeq: (n: Parameters<typeof base.storedMaxNodeSeq>[0]) => (calls.maxima++, base.storedMaxNodeSeq(n)) };
    const small = new InProcessTransport({ defaultPartitions: 1, batchMessagesMax: 10 });
    await small.ensureTopics([{ name: topic, partitions: 1 }, { name: `${topic}.dlq`, partitions: 1 }]);
    const collector = new Collector({ transport: small, writer, topic, dlqTopic: `${topic}.dlq`, groupId: `${topic}.g`, batchRowsMax: 1_000, flushIntervalMs: 20, recordBytesMax: 64 * 1024, logger: silentLogger });
    collectors.push(collector);
    await collector.start();
    const runId = `steady-${id}`;
    const records = makeRecords(runId, 200, 2);
    const producer = await small.createProducer();
    for (let i = 0; i < records.length; i += 10) await producer.send(topic, records.slice(i, i + 10).map(message));
    await waitFor(async () => (await small.lag(`${topic}.g`, topic)) === 0, 30_000, 'the stream');
    expect(collector.stats.batches).toBeGreaterThan(5);
    expect(calls).toEqual({ versions: 0, maxima: 1 });
    // A repeat of an early record with other contents, long after it was stored, bundled with a
    // new record: the dead letter holds exactly the repeat's line.
    const repeat = JSON.stringify({ ...records[4]!, msgs_sent: 99 });
    const next = makeRecord({ run_id: runId, node: records[4]!.node, node_seq: 100 });
    await producer.send(topic, [{ key: recordKey(next), value: `${JSON.stringify(next)}\n${repeat}` }]);
    await waitFor(async () => (await small.lag(`${topic}.g`, topic)) === 0, 30_000, 'the repeat');
    expect(calls.versions).toBe(1);
    expect(collector.stats.conflicts).toBe(1);
    const letters = small.messages(`${topic}.dlq`).map((m) => parseDeadLetter(m)!);
    expect(letters.map((l) => l.reason)).toEqual(['conflict']);
    expect(JSON.parse(letters[0]!.stored!)).toEqual(records[4]);
    expect(letters[0]!.value.toString()).toBe(repeat);
    expect(letters[0]!.source.index).toBe(1);
    expect(await countTransitions(store, runId)).toBe(records.length + 1);
    await collector.stop();
    await small.close();
  });

  it('invalid UTF-8 is rejected with its reason; the dead letter holds the original bytes exactly', async () => {
    const runId = `utf8-${randomUUID().slice(0, 8)}`;
    const good = makeRecord({ run_id: runId, node: 0, node_seq: 0 });
    const text = JSON.stringify(makeRecord({ run_id: `${runId}-X`, node: 0, node_seq: 1 }));
    const bytes = Buffer.from(text);
    bytes[bytes.indexOf('-X') + 1] = 0xff; // an invalid byte inside the run id
    const { letters } = await ingest('utf8', [message(good), { key: 'bad', value: bytes }]);
    expect(letters).toHaveLength(1);
    expect(letters[0]!.reason).toBe('invalid_utf8');
    expect(Buffer.compare(letters[0]!.value, bytes)).toBe(0);
    expect(await countTransitions(store, runId)).toBe(1);
    expect(await countTransitions(store, `${runId}-\uFFFD`)).toBe(0);
  });

  it('binary messages are dead-lettered one per message, byte for byte, newlines and all', async () => {
    const blobs = Array.from({ length: 40 }, (_, i) => {
      const b = Buffer.alloc(64 + i);
      for (let j = 0; j < b.length; j++) b[j] = (i * 31 + j * 7) % 256;
      b[3] = 0x0a; // every message contains newlines
      b[10] = 0x0a;
      return b;
    });
    const { letters } = await ingest('binary', blobs.map((value, i) => ({ key: `blob-${i}`, value })));
    expect(letters).toHaveLength(40);
    for (const [i, blob] of blobs.entries()) {
      const letter = letters.find((l) => l.source.key === `blob-${i}`)!;
      expect(Buffer.compare(letter.value, blob), `blob ${i}`).toBe(0);
      expect(letter.source.index).toBe(0);
    }
  });

  it('a run id with a lone UTF-16 surrogate is a schema error for that record alone', async () => {
    const runId = `sur-${randomUUID().slice(0, 8)}`;
    const good = makeRecords(runId, 30, 3);
    const poison = makeRecord({ run_id: `${runId}\ud800`, node: 0, node_seq: 0 });
    const messages = [...good.slice(0, 15), poison, ...good.slice(15)].map(message);
    const { letters } = await ingest('surrogate', messages);
    expect(letters.map((l) => l.reason)).toEqual(['schema_invalid']);
    expect(letters[0]!.errors.map((e) => e.path)).toContain('run_id');
    expect(new Set(await eventIds(store, runId))).toEqual(new Set(good.map((r) => r.event_id)));
  });

  it('an insert the engine rejects is bisected: only the poison record fails, the rest of the insert is stored', async () => {
    // Bypasses validation on purpose to make the real engine refuse a row: a lone surrogate
    // cannot be parsed by ClickHouse's JSON reader (CANNOT_PARSE_ESCAPE_SEQUENCE).
    const runId = `bis-${randomUUID().slice(0, 8)}`;
    const records = makeRecords(runId, 64, 4);
    const poisonAt = [9, 40];
    const batch = records.map((r, i) => (poisonAt.includes(i) ? { ...r, run_id: `${runId}\ud800` } : r));
    const writer = storeRecordWriter(store);
    let splits = 0;
    const rejected = await insertBisecting(batch, (some) => writer.write(some), () => splits++);
    expect(rejected.map((r) => batch.indexOf(r.item))).toEqual(poisonAt);
    for (const r of rejected) {
      expect(r.error).toBeInstanceOf(LatticeError);
      expect(r.error.retriable).toBe(false);
    }
    expect(splits).toBeGreaterThan(0);
    expect(new Set(await eventIds(store, runId))).toEqual(new Set(records.filter((_, i) => !poisonAt.includes(i)).map((r) => r.event_id)));
  });

  it('gap records land in trace_gaps, exactly; a malformed gap is dead-lettered', async () => {
    const runId = `gap-${randomUUID().slice(0, 8)}`;
    const records = makeRecords(runId, 10, 1);
    const gap = makeGapRecord({ runId, node: 0, first: 10, last: 24, reason: 'spool_full', declaredAtUs: 1_767_225_600_000_000 });
    const bad = { ...makeGapRecord({ runId, node: 0, first: 30, last: 31, reason: 'spool_full', declaredAtUs: 0 }), records: 5 };
    const key = `${runId}/0`;
    const { collector, letters } = await ingest('gaps', [...records.map(message), { key, value: JSON.stringify(gap) }, { key, value: JSON.stringify(bad) }]);
    expect(collector.stats.gaps).toBe(1);
    expect(collector.stats.gapRecords).toBe(15);
    expect(letters.map((l) => [l.reason, l.errors.map((e) => e.path)])).toEqual([['schema_invalid', ['records']]]);
    expect(await gapsOf(store, runId)).toEqual([{ run_id: runId, node: 0, node_seq_first: 10, node_seq_last: 24, records: 15, reason: 'spool_full' }]);
  });

  it('metrics snapshots land in metrics_snapshots byte for byte, alone or bundled with records; a bad one is dead-lettered naming the field', async () => {
    const runId = `snap-${randomUUID().slice(0, 8)}`;
    const records = makeRecords(runId, 6, 1);
    const snapshots = [0, 1, 2].map((snap_seq) => makeSnapshot({ run_id: runId, node: 0, snap_seq }));
    const bad = makeSnapshot({ run_id: runId, node: 0, snap_seq: 3, sent_to: [1] });
    const key = `${runId}/0`;
    const line = (x: unknown) => JSON.stringify(x);
    const { collector, letters } = await ingest('snapshots', [
      // A bundle as the producer sends it: records and a snapshot of one node, one per line (the fast path).
      { key, value: [line(records[0]), line(records[1]), line(snapshots[0]), line(records[2])].join('\n') },
      { key, value: line(snapshots[1]) },
      // A bundle the fast path refuses (a bad snapshot among them): each line on its own.
      { key, value: [line(records[3]), line(snapshots[2]), line(bad), line(records[4]), line(records[5])].join('\n') },
    ]);
    expect(collector.stats.snapshots).toBe(3);
    expect(letters.map((l) => [l.reason, l.source.index, l.errors.map((e) => e.path)])).toEqual([['schema_invalid', 2, ['sent_to']]]);
    expect(letters[0]!.value.toString('utf8')).toBe(line(bad));
    expect(await countTransitions(store, runId)).toBe(6);
    expect(await snapshotsOf(store, runId)).toEqual(snapshots);
  });
});
