import { describe, expect, it } from 'vitest';
import { PHASES } from '../../core/trace-schema.ts';
import { TestCluster } from './epaxos-harness.ts';
import type { Operation } from '../../cluster/protocol.ts';

const write = (key: string, value: string): Operation => ({ kind: 'write', key, value });

function executedValues(cluster: TestCluster, node: number, key: string): string[] {
  return cluster
    .node(node)
    .stateMachine.log.filter((op) => op.key === key && op.kind !== 'read')
    .map((op) => (op.kind === 'read' ? '' : op.value));
}

describe('EPaxos normal case', () => {
  for (const n of [3, 5, 7]) {
    it(`commits non-conflicting commands on the fast path in one round trip (n=${n})`, () => {
      const cluster = new TestCluster({ n, seed: `fast-${n}` });
      for (let c = 0; c < n; c++) cluster.submit(c, 1, write(`key-${c}`, `v-${c}`));
      const done = cluster.runUntil(() => [...Array(n).keys()].every((c) => cluster.completed(c, 1)), 1_000_000);
      expect(done).toBe(true);
      expect(cluster.sentOfType('ACCEPT')).toHaveLength(0);
      expect(cluster.sentOfType('PREPARE')).toHaveLength(0);
      // Fixed 1 ms links: client→leader 1 ms, then PRE-ACCEPT and its reply: commit 2 ms after the request.
      const commits = cluster.transitions.filter((t) => t.phase === 'commit' && t.node === t.leader);
      expect(commits).toHaveLength(n);
      for (const commit of commits) expect(commit.latencyUs).toBe(2_000);
      // Each client went to its own command leader (clientId mod n).
      for (let c = 0; c < n; c++) expect(cluster.client(c).sentTo).toEqual([c]);
      cluster.runFor(50_000);
      for (const node of cluster.nodes) expect(node.stateMachine.data.size).toBe(n);
    });
  }

  it('answers reads and writes with the state machine results', () => {
    const cluster = new TestCluster({ n: 3, seed: 'results' });
    cluster.submit(0, 1, write('x', 'one'));
    cluster.runUntil(() => cluster.completed(0, 1), 1_000_000);
    cluster.submit(1, 1, { kind: 'read', key: 'x' });
    cluster.submit(2, 1, { kind: 'cas', key: 'x', expected: 'nope', value: 'two' });
    cluster.runUntil(() => cluster.completed(1, 1) && cluster.completed(2, 1), 1_000_000);
    expect(cluster.client(0).results.get(1)).toEqual({ value: 'one', applied: true });
    expect(cluster.client(1).results.get(1)).toEqual({ value: 'one', applied: true });
    expect(cluster.client(2).results.get(1)).toEqual({ value: 'one', applied: false });
  });

  it('takes the slow path for concurrent conflicting commands and executes them in one order everywhere', () => {
    const cluster = new TestCluster({ n: 5, seed: 'conflicts', faults: { minDelayUs: 500, maxDelayUs: 3_000 } });
    const rounds = 20;
    for (let r = 0; r < rounds; r++) {
      for (let c = 0; c < 5; c++) cluster.submit(c, r + 1, write('hot', `c${c}-r${r}`));
      cluster.runUntil(() => [...Array(5).keys()].every((c) => cluster.completed(c, r + 1)), 5_000_000);
    }
    expect([...Array(5).keys()].every((c) => cluster.completed(c, rounds))).toBe(true);
    expect(cluster.sentOfType('ACCEPT').length).toBeGreaterThan(0);
    cluster.runFor(1_000_000);
    const reference = executedValues(cluster, 0, 'hot');
    expect(reference).toHaveLength(rounds * 5);
    for (const node of cluster.nodes) {
      expect(executedValues(cluster, node.id, 'hot')).toEqual(reference);
      expect(node.stateMachine.digest()).toBe(cluster.node(0).stateMachine.digest());
    }
  });

  it('orders a read after the conflicting write it saw, and lets reads of one key commute', () => {
    const cluster = new TestCluster({ n: 3, seed: 'reads' });
    cluster.submit(0, 1, write('k', 'a'));
    cluster.runUntil(() => cluster.completed(0, 1), 1_000_000);
    for (let c = 1; c <= 3; c++) cluster.submit(c, 1, { kind: 'read', key: 'k' });
    cluster.runUntil(() => [1, 2, 3].every((c) => cluster.completed(c, 1)), 1_000_000);
    for (let c = 1; c <= 3; c++) expect(cluster.client(c).results.get(1)?.value).toBe('a');
    // Reads do not conflict with each other: concurrent reads commit on the fast path.
    expect(cluster.sentOfType('ACCEPT')).toHaveLength(0);
  });

  it('reports only EPaxos phases with sane fields', () => {
    const cluster = new TestCluster({ n: 3, seed: 'trace', faults: { minDelayUs: 200, maxDelayUs: 2_000 } });
    for (let c = 0; c < 6; c++) cluster.submit(c, 1, write('same', `v${c}`));
    cluster.runUntil(() => [...Array(6).keys()].every((c) => cluster.completed(c, 1)), 2_000_000);
    const allowed: readonly string[] = PHASES.epaxos;
    const seen = new Set(cluster.transitions.map((t) => t.phase));
    for (const phase of seen) expect(allowed).toContain(phase);
    for (const phase of ['request', 'pre_accept', 'pre_accept_reply', 'commit', 'execute', 'reply']) expect(seen).toContain(phase);
    for (const t of cluster.transitions) {
      expect(Number.isInteger(t.view) && t.view >= 0).toBe(true);
      expect(Number.isInteger(t.seq) && t.seq >= 0).toBe(true);
      expect(t.leader).toBeGreaterThanOrEqual(0);
      expect(t.leader).toBeLessThan(3);
      if (t.batchSize !== undefined) expect(t.batchSize).toBe(1);
    }
    const executes = cluster.transitions.filter((t) => t.phase === 'execute' && t.node === t.leader);
    expect(executes.every((t) => typeof t.latencyUs === 'number' && t.latencyUs > 0)).toBe(true);
  });
});
