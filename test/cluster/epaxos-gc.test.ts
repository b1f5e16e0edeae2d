/**
 * EPaxos garbage collection (issue 14 §4): instances every replica executed are dropped, so the
 * log a replica holds (progressReport().logSize) is the window not yet executed everywhere, not
 * the run so far; what was dropped is answered safely; a replica that was away catches up.
 */
import { describe, expect, it } from 'vitest';
import { createAuthenticator } from '../../cluster/auth.ts';
import { ExecutedRequests } from '../../cluster/epaxos/executed-requests.ts';
import { GcWatermark } from '../../cluster/epaxos/gc-watermark.ts';
import type { Operation } from '../../cluster/protocol.ts';
import { TestCluster } from './epaxos-harness.ts';

const write = (key: string, value: string): Operation => ({ kind: 'write', key, value });

function writtenValues(cluster: TestCluster, node: number): string[] {
  return cluster.node(node).stateMachine.log.flatMap((op) => (op.kind === 'read' ? [] : [op.value]));
}

/** Closed-loop clients (one request outstanding, ids 1, 2, ...) until each sent `perClient`. */
function pumpClients(cluster: TestCluster, clients: number, perClient: number, keys: number): () => boolean {
  const next = new Map<number, number>();
  return () => {
    for (let c = 0; c < clients; c++) {
      const sent = next.get(c) ?? 0;
      if (sent < perClient && cluster.completed(c, sent)) {
        next.set(c, sent + 1);
        cluster.submit(c, sent + 1, write(`k${(c * 7 + sent) % keys}`, `c${c}-${sent}`));
      }
    }
    return [...Array(clients).keys()].every((c) => cluster.completed(c, perClient));
  };
}

function progress(cluster: TestCluster, node: number) {
  return cluster.node(node).replica.progressReport();
}

function expectSameState(cluster: TestCluster): void {
  const digest = cluster.node(0).stateMachine.digest();
  for (const node of cluster.nodes) {
    const values = writtenValues(cluster, node.id);
    expect(new Set(values).size, `node ${node.id} executed a request twice`).toBe(values.length);
    expect(node.stateMachine.digest()).toBe(digest);
  }
}

describe('EPaxos garbage collection', () => {
  it('holds only what is not yet executed everywhere, under loss, duplication and reordering', () => {
    const cluster = new TestCluster({ n: 5, seed: 'gc-faults', faults: { dropRate: 0.1, duplicateRate: 0.2, minDelayUs: 200, maxDelayUs: 6_000 } });
    const clients = 5;
    const perClient = 60;
    expect(cluster.runUntil(pumpClients(cluster, clients, perClient, 3), 300_000_000)).toBe(true);
    cluster.runFor(5_000_000); // idle anti-entropy: every replica hears every other's executed prefix
    expectSameState(cluster);
    for (const node of cluster.nodes) {
      expect(writtenValues(cluster, node.id)).toHaveLength(clients * perClient);
      const report = progress(cluster, node.id);
      expect(report.backlog).toBe(0);
      // Every instance ran everywhere and was reported: at most the last one or two per space
      // stay (a report trails the execution it reports by one SYNC).
      expect(report.executed).toBeGreaterThanOrEqual(clients * perClient);
      expect(report.logSize, `node ${node.id}: ${report.logSize} records held of ${report.executed}`).toBeLessThanOrEqual(2 * 5);
    }
  });

  it('never gives a dropped instance a fresh record: late PRE_ACCEPT, ACCEPT, PREPARE and COMMIT are ignored', () => {
    const cluster = new TestCluster({ n: 3, seed: 'gc-stale' });
    expect(cluster.runUntil(pumpClients(cluster, 3, 10, 2), 20_000_000)).toBe(true);
    cluster.runFor(3_000_000);
    const before = progress(cluster, 0);
    expect(before.logSize).toBeLessThan(before.executed);
    // Instance 1.0 was executed everywhere and dropped at node 0. A stale proposer (node 1, at a
    // recovery ballot it owns) asks about it with a different command: a placeholder here could
    // let that command (or a no-op) take the slot, so node 0 must neither record nor answer.
    const node1 = createAuthenticator('test-cluster-secret', 1, 3);
    const evil = { clientId: 99, requestId: 1, op: write('k0', 'rewritten') };
    const about = { replica: 1, instance: 0 };
    const sentBefore = cluster.sent.filter((s) => s.from === 0 && s.to === 1).length;
    cluster.inject(0, node1.sign({ type: 'PREPARE', from: 1, ballot: 4, ...about }));
    cluster.inject(0, node1.sign({ type: 'PRE_ACCEPT', from: 1, ballot: 0, ...about, cmd: evil, seq: 1, deps: [-1, -1, -1] }));
    cluster.inject(0, node1.sign({ type: 'ACCEPT', from: 1, ballot: 4, ...about, cmd: evil, seq: 1, deps: [-1, -1, -1] }));
    cluster.inject(0, node1.sign({ type: 'COMMIT', from: 1, ballot: 4, ...about, cmd: evil, seq: 1, deps: [-1, -1, -1], executedEverywhere: [-1, -1, -1] }));
    cluster.runFor(50_000);
    // Well-formed and authentic: none was refused, each was looked at and let go.
    expect(cluster.rejections.filter((r) => r.node === 0)).toEqual([]);
    const after = progress(cluster, 0);
    expect(after.logSize).toBe(before.logSize);
    expect(after.backlog).toBe(0);
    const replies = cluster.sent.filter((s) => s.from === 0 && s.to === 1).slice(sentBefore);
    expect(replies.map((s) => s.message.type).filter((t) => t !== 'SYNC')).toEqual([]);
    expect(writtenValues(cluster, 0)).not.toContain('rewritten');
  });

  it('a partitioned replica holds the watermark back, then catches up from what was kept, and the log shrinks again', () => {
    const cluster = new TestCluster({ n: 5, seed: 'gc-partition', faults: { minDelayUs: 300, maxDelayUs: 2_000 } });
    cluster.partition([4]);
    // Clients 0..3 lead at nodes 0..3; client 4's requests fail over from node 4 to node 0.
    expect(cluster.runUntil(pumpClients(cluster, 5, 30, 3), 120_000_000)).toBe(true);
    cluster.runFor(3_000_000);
    expect(writtenValues(cluster, 4)).toEqual([]);
    const heldWhileAway = progress(cluster, 0).logSize;
    // Node 4 reported nothing since the start, so nothing could be collected for it to miss.
    expect(heldWhileAway).toBeGreaterThanOrEqual(150);
    cluster.heal();
    cluster.runFor(20_000_000);
    expectSameState(cluster);
    expect(writtenValues(cluster, 4)).toHaveLength(150);
    for (const node of cluster.nodes) expect(progress(cluster, node.id).logSize).toBeLessThanOrEqual(2 * 5);
  });

  it('a replica that crashes mid-run catches up after restart, and then everything is collected', () => {
    const cluster = new TestCluster({ n: 5, seed: 'gc-crash', faults: { minDelayUs: 300, maxDelayUs: 3_000 } });
    const pump = pumpClients(cluster, 5, 40, 3);
    for (let step = 0; step < 40; step++) {
      pump();
      if (step === 5) cluster.crash(2);
      if (step === 30) cluster.restart(2);
      cluster.runFor(50_000);
    }
    expect(cluster.runUntil(pump, 60_000_000)).toBe(true);
    cluster.runFor(10_000_000);
    expectSameState(cluster);
    for (const node of cluster.nodes) {
      expect(writtenValues(cluster, node.id)).toHaveLength(200);
      expect(progress(cluster, node.id).logSize).toBeLessThanOrEqual(2 * 5);
    }
  });

  it('a replica back with an empty disk (amnesia, beyond the fault model) catches up by snapshot, not from collected logs', () => {
    const cluster = new TestCluster({ n: 5, seed: 'gc-amnesia', faults: { minDelayUs: 300, maxDelayUs: 3_000 } });
    const pump = pumpClients(cluster, 5, 40, 3);
    for (let step = 0; step < 40; step++) {
      pump();
      if (step === 10) cluster.crash(3);
      if (step === 25) cluster.restart(3, { amnesia: true });
      cluster.runFor(50_000);
    }
    expect(cluster.runUntil(pump, 60_000_000)).toBe(true);
    cluster.runFor(10_000_000);
    expectSameState(cluster);
    for (const node of cluster.nodes) {
      const report = progress(cluster, node.id);
      expect(report.backlog).toBe(0);
      expect(report.logSize, `node ${node.id}`).toBeLessThanOrEqual(2 * 5);
    }
    expect(progress(cluster, 3).executed).toBe(progress(cluster, 0).executed);
    // What the others collected before the crash is gone: the log could not have replayed it.
    expect(cluster.sentOfType('SNAPSHOT').filter((s) => s.to === 3).length).toBeGreaterThan(0);
  });

  it('a long absence is bounded: past heldExecutedPerSpaceMax the others drop anyway, and the replica catches up by snapshot', () => {
    const limits = { heldExecutedPerSpaceMax: 20 };
    const cluster = new TestCluster({ n: 5, seed: 'gc-bounded', faults: { minDelayUs: 300, maxDelayUs: 3_000 }, limits });
    const pump = pumpClients(cluster, 4, 60, 3); // clients 0..3 lead at nodes 0..3
    for (let step = 0; step < 10; step++) {
      pump();
      cluster.runFor(50_000);
    }
    cluster.crash(4);
    let heldMax = 0;
    expect(
      cluster.runUntil(() => {
        for (const id of [0, 1, 2, 3]) heldMax = Math.max(heldMax, progress(cluster, id).logSize);
        return pump();
      }, 60_000_000),
    ).toBe(true);
    // Node 4 reports nothing while down, yet what the others hold stays near 4 spaces × the bound.
    expect(heldMax).toBeLessThanOrEqual(4 * (limits.heldExecutedPerSpaceMax + 10));
    const done = progress(cluster, 0).executed;
    cluster.restart(4);
    cluster.runFor(10_000_000);
    expect(cluster.sentOfType('SNAPSHOT').filter((s) => s.to === 4).length).toBeGreaterThan(0);
    expectSameState(cluster);
    expect(progress(cluster, 4).executed).toBe(done);
    for (const node of cluster.nodes) expect(progress(cluster, node.id).backlog).toBe(0);
  });

  it('refuses a limit that is not a whole number', () => {
    expect(() => new TestCluster({ n: 3, seed: 'gc-limits', limits: { heldExecutedPerSpaceMax: -1 } })).toThrow(/heldExecutedPerSpaceMax/);
  });

  it('ignores a snapshot it does not need (an old SYNC made a peer send one)', () => {
    const cluster = new TestCluster({ n: 3, seed: 'gc-snapshot-stale' });
    expect(cluster.runUntil(pumpClients(cluster, 3, 10, 2), 20_000_000)).toBe(true);
    cluster.runFor(3_000_000);
    const digest = cluster.node(0).stateMachine.digest();
    const before = progress(cluster, 0);
    const node1 = createAuthenticator('test-cluster-secret', 1, 3);
    // An empty state from "before anything": restoring it would undo every execution.
    cluster.inject(0, node1.sign({ type: 'SNAPSHOT', from: 1, state: { entries: [] }, collectedUpTo: [-1, -1, -1], droppedUpTo: [-1, -1, -1], executedPrefix: [-1, -1, -1], known: [-1, -1, -1], executed: [], requests: [] }));
    cluster.runFor(50_000);
    expect(cluster.rejections.filter((r) => r.node === 0)).toEqual([]);
    expect(cluster.node(0).stateMachine.digest()).toBe(digest);
    expect(progress(cluster, 0)).toEqual(before);
  });
});

describe('GC watermark', () => {
  it('is the minimum over every replica, never above our own executed prefix, and only rises', () => {
    const own = [5, 9, -1];
    const w = new GcWatermark(3, 0, own);
    expect([w.floor(0), w.floor(1)]).toEqual([-1, -1]); // nobody else reported yet
    w.report(1, [7, 3, -1]);
    w.report(2, [4, 8, -1]);
    expect([w.floor(0), w.floor(1), w.floor(2)]).toEqual([4, 3, -1]);
    w.report(2, [1, 1, -1]); // an old report overtaken by a newer one
    expect([w.floor(0), w.floor(1)]).toEqual([4, 3]);
    w.relay([6, 9, 2]); // a peer's watermark: true of everyone, but we drop only what we ran
    expect([w.floor(0), w.floor(1), w.floor(2)]).toEqual([5, 9, -1]);
  });
});

describe('exactly-once window', () => {
  it('knows every executed id per client with a floor and the few executed early, and answers only the latest', () => {
    const done = new ExecutedRequests();
    const r = (value: string) => ({ value, applied: true });
    done.record(7, 1, r('a'));
    done.record(7, 3, r('c')); // executed before 2 (no conflict between them)
    expect(done.executed(7, 2)).toBe(false);
    expect(done.heldAboveFloor()).toBe(1);
    expect(done.resultFor(7, 3)).toEqual(r('c'));
    done.record(7, 2, r('b'));
    expect([1, 2, 3].map((id) => done.executed(7, id))).toEqual([true, true, true]);
    expect(done.heldAboveFloor()).toBe(0);
    // Only the latest can still be waited for: an older resend is a stale duplicate.
    expect(done.resultFor(7, 2)).toBeUndefined();
    expect(done.resultFor(7, 3)).toEqual(r('c'));
    expect(() => done.record(7, 2, r('again'))).toThrow(/executed twice/);
    const copy = new ExecutedRequests();
    copy.restore(done.export());
    expect([copy.executed(7, 3), copy.executed(7, 4), copy.resultFor(7, 3)]).toEqual([true, false, r('c')]);
  });
});
