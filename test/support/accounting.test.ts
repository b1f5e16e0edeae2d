/**
 * The fault suite's accounting checker, on the real embedded engine: hand-made stores and dead
 * letters where the right answer is known — all accounted, missing, duplicated, overlapping,
 * unexpected — and dead letters read back from a real (in-process) topic.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deadLetterMessage, deadLetterOf, type DeadLetter, type DeadLetterReason } from '../../collector/dead-letter.ts';
import { InProcessTransport } from '../../collector/transport/in-process.ts';
import { makeGapRecord } from '../../core/gap-record.ts';
import type { TraceRecord } from '../../core/trace-schema.ts';
import type { Store } from '../../store/client.ts';
import { insertGaps } from '../../store/gaps.ts';
import { migrate } from '../../store/migrations.ts';
import { insertTransitions } from '../../store/transitions.ts';
import { checkAccounting, producedOf, readDeadLetters, type AccountingReport, type NodeAccounting } from './accounting.ts';
import { makeRecord } from './records.ts';
import { openTestStore } from './store.ts';

let store: Store;
beforeAll(async () => {
  store = await openTestStore();
  await migrate(store);
});
afterAll(async () => {
  await store?.close();
});

const newRun = (label: string) => `acct-${label}-${randomUUID().slice(0, 8)}`;
const recordsOf = (runId: string, node: number, seqs: Iterable<number>) => [...seqs].map((node_seq) => makeRecord({ run_id: runId, node, node_seq }));
const range = (first: number, last: number) => Array.from({ length: last - first + 1 }, (_, i) => first + i);

let offset = 0;
/** A dead letter as the collector writes it, for these bytes. */
function letterOf(value: Buffer | string, reason: DeadLetterReason = 'store_rejected'): DeadLetter {
  const bytes = typeof value === 'string' ? Buffer.from(value) : value;
  return deadLetterOf({ topic: 'lattice.transitions', partition: 0, offset: String(offset++), key: null, value: bytes, headers: {} }, reason, [{ path: '', message: 'test' }]);
}
const letterFor = (record: TraceRecord, reason?: DeadLetterReason) => letterOf(JSON.stringify(record), reason);
const gap = (runId: string, node: number, first: number, last: number) => makeGapRecord({ runId, node, first, last, reason: 'spool_full', declaredAtUs: 1_767_225_600_000_000 });
const node = (report: AccountingReport, n: number): NodeAccounting => report.nodes.find((x) => x.node === n)!;

describe('accounting checker (embedded store)', () => {
  it('accepts a run where every record is stored, dead-lettered or in a gap, exactly once; redeliveries are not duplicates', async () => {
    const run = newRun('ok');
    // node 0: 0..9 stored; node 1: 0..2 and 6..7 stored, 3..5 a gap; node 2: 0..4 stored but 3, which is dead-lettered.
    const stored = [...recordsOf(run, 0, range(0, 9)), ...recordsOf(run, 1, [0, 1, 2, 6, 7]), ...recordsOf(run, 2, [0, 1, 2, 4])];
    await store.client.command({ query: `SYSTEM STOP MERGES ${store.table('transitions')}` });
    try {
      await insertTransitions(store, stored);
      await insertTransitions(store, recordsOf(run, 0, range(0, 4))); // a redelivered batch
    } finally {
      await store.client.command({ query: `SYSTEM START MERGES ${store.table('transitions')}` });
    }
    await insertGaps(store, [gap(run, 1, 3, 5)]);
    await insertGaps(store, [gap(run, 1, 3, 5)]); // a redelivered gap collapses in FINAL too
    const dead = makeRecord({ run_id: run, node: 2, node_seq: 3 });
    const letters = [letterFor(dead), letterFor(dead)]; // dead-lettered twice (redelivery): one record

    const report = await checkAccounting({ store, produced: [{ runId: run, nodes: { 0: 10, 1: 8, 2: 5 } }], deadLetters: letters });
    expect(report.ok, report.summary).toBe(true);
    expect({ produced: report.produced, stored: report.stored, deadLettered: report.deadLettered, gapAccounted: report.gapAccounted }).toEqual({ produced: 23, stored: 19, deadLettered: 1, gapAccounted: 3 });
    expect({ missing: report.missing, duplicates: report.duplicates, overlaps: report.overlaps, unexpected: report.unexpected }).toEqual({ missing: 0, duplicates: 0, overlaps: 0, unexpected: 0 });
    expect(report.redeliveredRows).toBe(5);
    expect(report.repeatedDeadLetters).toBe(1);
    expect(report.nodes.map((n) => [n.node, n.inOrder])).toEqual([[0, true], [1, true], [2, true]]);
    expect(node(report, 1)).toMatchObject({ produced: 8, stored: 5, gapAccounted: 3, deadLettered: 0 });
    expect(report.summary).toBe(`accounting OK: produced 23 = stored 19 + dead-lettered 1 + gaps 3; missing 0, duplicates 0, overlaps 0, unexpected 0; 3/3 nodes in order (1 run); 5 redelivered rows not yet merged, 1 repeated dead letters`);
  });

  it('finds missing records, as ranges per node', async () => {
    const run = newRun('missing');
    await insertTransitions(store, [...recordsOf(run, 0, [0, 1, 5, 9]), ...recordsOf(run, 1, range(0, 3))]);
    const report = await checkAccounting({ store, produced: [{ runId: run, nodes: new Map([[0, 10], [1, 6]]) }], deadLetters: [] });
    expect(report.ok).toBe(false);
    expect(report.missing).toBe(8);
    expect(node(report, 0).missing).toEqual([{ first: 2, last: 4 }, { first: 6, last: 8 }]);
    expect(node(report, 1).missing).toEqual([{ first: 4, last: 5 }]);
    expect(node(report, 0).inOrder).toBe(false);
    expect(report.summary).toMatch(/^accounting FAILED: produced 16 vs stored 8 \+ dead-lettered 0 \+ gaps 0; missing 8 \(first: acct-missing-\S+ node 0 seq 2\.\.4\), duplicates 0, overlaps 0, unexpected 0; 0\/2 nodes in order/);
  });

  it('finds a record both stored and dead-lettered: a duplicate and an overlap', async () => {
    const run = newRun('dup');
    const records = recordsOf(run, 0, range(0, 4));
    await insertTransitions(store, records);
    const report = await checkAccounting({ store, produced: [{ runId: run, nodes: { 0: 5 } }], deadLetters: [letterFor(records[2]!, 'conflict')] });
    expect(report.ok).toBe(false);
    expect(report.duplicates).toBe(1);
    expect(report.duplicateIds).toEqual([{ eventId: `${run}/0/2`, kind: 'stored_and_dead_lettered' }]);
    expect(report.overlaps).toBe(1);
    expect(node(report, 0).overlaps).toEqual([{ first: 2, last: 2, sources: ['stored', 'dead_lettered'] }]);
    expect(report.missing).toBe(0);
    expect(report.summary).toContain(`duplicates 1 (first: ${run}/0/2, stored_and_dead_lettered)`);
  });

  it('finds an event id twice in FINAL (two rows under different keys) and the mismatched id', async () => {
    const run = newRun('final2');
    const records = recordsOf(run, 0, range(0, 2));
    await insertTransitions(store, [...records, makeRecord({ run_id: run, node: 0, node_seq: 3, event_id: `${run}/0/1` })]);
    const report = await checkAccounting({ store, produced: [{ runId: run, nodes: { 0: 4 } }], deadLetters: [] });
    expect(report.ok).toBe(false);
    expect(report.duplicateIds).toEqual([{ eventId: `${run}/0/1`, kind: 'final_twice' }]);
    expect(report.mismatchedIds).toBe(1);
    expect(report.missing).toBe(0);
  });

  it('finds overlapping gaps, and a gap over stored records', async () => {
    const run = newRun('overlap');
    await insertTransitions(store, recordsOf(run, 0, range(0, 5)));
    await insertGaps(store, [gap(run, 0, 5, 9), gap(run, 0, 8, 11)]);
    const report = await checkAccounting({ store, produced: [{ runId: run, nodes: { 0: 12 } }], deadLetters: [] });
    expect(report.ok).toBe(false);
    expect(node(report, 0).overlaps).toEqual([
      { first: 5, last: 5, sources: ['stored', 'gap'] },
      { first: 8, last: 9, sources: ['gap', 'gap'] },
    ]);
    expect(report.overlaps).toBe(3);
    expect(report.duplicates).toBe(0);
    expect(report.missing).toBe(0);
    expect(report.summary).toContain(`overlaps 3 (first: ${run} node 0 seq 5 stored+gap)`);
  });

  it('finds records covered but never produced: beyond N, and on a node that produced nothing', async () => {
    const run = newRun('extra');
    await insertTransitions(store, [...recordsOf(run, 0, range(0, 6)), ...recordsOf(run, 3, [0])]);
    await insertGaps(store, [gap(run, 1, 2, 4)]);
    const report = await checkAccounting({
      store,
      produced: [{ runId: run, nodes: { 0: 5, 1: 3 } }],
      deadLetters: [letterFor(makeRecord({ run_id: run, node: 1, node_seq: 0 })), letterFor(makeRecord({ run_id: run, node: 1, node_seq: 1 }))],
    });
    expect(report.ok).toBe(false);
    expect(node(report, 0).unexpected).toEqual([{ first: 5, last: 6 }]);
    expect(node(report, 1).unexpected).toEqual([{ first: 3, last: 4 }]);
    expect(node(report, 3)).toMatchObject({ produced: 0, unexpected: [{ first: 0, last: 0 }], inOrder: false });
    expect(report.unexpected).toBe(5);
    expect(node(report, 1)).toMatchObject({ deadLettered: 2, gapAccounted: 1, missing: [] });
  });

  it('attributes a bundled dead letter line by line, and fails on one that names no record', async () => {
    const run = newRun('letters');
    await insertTransitions(store, recordsOf(run, 0, [0, 3]));
    const bundle = letterOf(`${JSON.stringify(makeRecord({ run_id: run, node: 0, node_seq: 1 }))}\n${JSON.stringify(makeRecord({ run_id: run, node: 0, node_seq: 2 }))}\n`, 'invalid_utf8');
    const byEventId = letterOf(JSON.stringify({ event_id: `${run}/0/4`, node: 'not a number' }), 'schema_invalid');
    const otherRun = letterFor(makeRecord({ run_id: 'some-other-run', node: 0, node_seq: 0 }));
    const accounted = await checkAccounting({ store, produced: [{ runId: run, nodes: { 0: 5 } }], deadLetters: [bundle, byEventId, otherRun] });
    expect(accounted.ok, accounted.summary).toBe(true);
    expect(accounted).toMatchObject({ stored: 2, deadLettered: 3, otherRunDeadLetters: 1 });

    const garbage = letterOf(Buffer.from([0xff, 0xfe, 0x00, 0x7b]), 'malformed_json');
    const report = await checkAccounting({ store, produced: [{ runId: run, nodes: { 0: 5 } }], deadLetters: [bundle, byEventId, garbage] });
    expect(report.ok).toBe(false);
    expect(report.unattributedDeadLetters).toBe(1);
    expect(report.summary).toContain('unattributed dead letters 1');
  });

  it('checks several runs at once, and derives what was produced from the records', async () => {
    const a = newRun('multi-a');
    const b = newRun('multi-b');
    const produced = [...recordsOf(a, 0, range(0, 3)), ...recordsOf(a, 1, range(0, 1)), ...recordsOf(b, 0, range(0, 2))];
    await insertTransitions(store, produced.filter((r) => !(r.run_id === b && r.node_seq === 2)));
    const report = await checkAccounting({ store, produced: producedOf(produced), deadLetters: [] });
    expect([...report.runs].sort()).toEqual([a, b].sort());
    expect(report.produced).toBe(9);
    expect(report.missing).toBe(1);
    expect(report.nodes.find((n) => n.runId === b)!.missing).toEqual([{ first: 2, last: 2 }]);
    expect(() => producedOf([makeRecord({ run_id: a, node: 0, node_seq: 1 })])).toThrow(/0\.\.1/);
  });
});

describe('readDeadLetters', () => {
  it('reads every dead letter back from the topic with its original bytes, and counts what is not one', async () => {
    const transport = new InProcessTransport({ defaultPartitions: 2 });
    try {
      const topic = `acct.dlq.${randomUUID().slice(0, 8)}`;
      await transport.ensureTopics([{ name: topic, partitions: 2 }]);
      const binary = Buffer.from([0x00, 0xc3, 0x28, 0x0a, 0xff]);
      const letters = [letterOf(binary, 'invalid_utf8'), ...Array.from({ length: 50 }, (_, i) => letterFor(makeRecord({ run_id: 'dlq-run', node: i % 3, node_seq: i })))];
      const producer = await transport.createProducer();
      await producer.send(topic, letters.map(deadLetterMessage));
      await producer.send(topic, [{ key: null, value: 'not a dead letter' }]);
      await producer.close();

      const read = await readDeadLetters(transport, topic);
      expect(read.other).toBe(1);
      expect(read.letters).toHaveLength(51);
      expect(read.letters.some((l) => l.value.equals(binary) && l.reason === 'invalid_utf8')).toBe(true);
      expect(new Set(read.letters.map((l) => l.source.offset))).toEqual(new Set(letters.map((l) => l.source.offset)));
    } finally {
      await transport.close();
    }
  });
});
