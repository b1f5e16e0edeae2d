import { describe, expect, it } from 'vitest';
import { createAuthenticator } from '../../cluster/auth.ts';
import type { Message, Operation } from '../../cluster/protocol.ts';
import { TestCluster } from './epaxos-harness.ts';

const write = (key: string, value: string): Operation => ({ kind: 'write', key, value });

function writtenValues(cluster: TestCluster, node: number): string[] {
  return cluster.node(node).stateMachine.log.flatMap((op) => (op.kind === 'read' ? [] : [op.value]));
}

/** Every node executed each write exactly once and the conflicting ones in the same order. */
function expectConverged(cluster: TestCluster, nodes: readonly number[], keys: readonly string[]): void {
  const first = nodes[0]!;
  for (const id of nodes) {
    const values = writtenValues(cluster, id);
    expect(new Set(values).size).toBe(values.length);
    expect(cluster.node(id).stateMachine.digest()).toBe(cluster.node(first).stateMachine.digest());
    for (const key of keys) {
      const perKey = (node: number) => cluster.node(node).stateMachine.log.filter((op) => op.key === key && op.kind !== 'read');
      expect(perKey(id)).toEqual(perKey(first));
    }
  }
}

describe('EPaxos recovery', () => {
  it('n=5: the leader crashes right after PRE-ACCEPT; another replica recovers the command and the client completes', () => {
    const cluster = new TestCluster({ n: 5, seed: 'crash-after-preaccept' });
    cluster.interceptor = (m) => {
      if (m.message.type === 'PRE_ACCEPT' && m.from === 0 && !cluster.node(0).crashed) cluster.schedule(1, () => cluster.crash(0));
      return m.message;
    };
    cluster.submit(0, 1, write('k', 'survives'));
    expect(cluster.runUntil(() => cluster.completed(0, 1), 10_000_000)).toBe(true);
    expect(cluster.sentOfType('PREPARE').length).toBeGreaterThan(0);
    cluster.runFor(2_000_000);
    for (const id of [1, 2, 3, 4]) expect(writtenValues(cluster, id)).toEqual(['survives']);
    // The restarted leader learns the outcome and executes the command once too.
    cluster.interceptor = null;
    cluster.restart(0);
    cluster.runFor(3_000_000);
    expect(writtenValues(cluster, 0)).toEqual(['survives']);
    expectConverged(cluster, [0, 1, 2, 3, 4], ['k']);
  });

  it('n=5: the PRE-ACCEPT reaches one replica only; recovery waits for enough replies, then commits consistently', () => {
    const cluster = new TestCluster({ n: 5, seed: 'one-preaccept' });
    cluster.interceptor = (m) => {
      if (m.message.type === 'PRE_ACCEPT' && m.from === 0) {
        if (!cluster.node(0).crashed) cluster.schedule(1, () => cluster.crash(0));
        return m.to === 1 ? m.message : null;
      }
      return m.message;
    };
    cluster.submit(0, 1, write('k', 'maybe'));
    cluster.submit(1, 1, write('k', 'other'));
    expect(cluster.runUntil(() => cluster.completed(0, 1) && cluster.completed(1, 1), 20_000_000)).toBe(true);
    cluster.runFor(3_000_000);
    for (const id of [1, 2, 3, 4]) expect(new Set(writtenValues(cluster, id))).toEqual(new Set(['maybe', 'other']));
    expectConverged(cluster, [1, 2, 3, 4], ['k']);
    cluster.interceptor = null;
    cluster.restart(0);
    cluster.runFor(3_000_000);
    expectConverged(cluster, [0, 1, 2, 3, 4], ['k']);
  });

  it('n=3: a leader crashes before anyone hears of its instance; the client goes elsewhere and the command runs once', () => {
    const cluster = new TestCluster({ n: 3, seed: 'silent-leader' });
    cluster.interceptor = (m) => {
      if (m.from === 0 && m.message.type === 'PRE_ACCEPT') {
        if (!cluster.node(0).crashed) cluster.schedule(1, () => cluster.crash(0));
        return null;
      }
      return m.message;
    };
    cluster.submit(0, 1, write('k', 'once'));
    expect(cluster.runUntil(() => cluster.completed(0, 1), 10_000_000)).toBe(true);
    expect(cluster.client(0).sentTo.length).toBeGreaterThan(1);
    cluster.interceptor = null;
    cluster.restart(0);
    // The restarted leader still drives its old instance of the same request: it commits, and executes as a duplicate.
    cluster.runFor(5_000_000);
    for (const id of [0, 1, 2]) expect(writtenValues(cluster, id)).toEqual(['once']);
    expect(cluster.transitions.filter((t) => t.phase === 'commit' && t.leader === 0 && t.seq === 0).length).toBe(3);
    expectConverged(cluster, [0, 1, 2], ['k']);
  });

  it('replicas crash and restart while commands flow; everything completes and converges', () => {
    const cluster = new TestCluster({ n: 5, seed: 'crash-restart', faults: { minDelayUs: 300, maxDelayUs: 4_000 } });
    const clients = 6;
    const perClient = 15;
    const next = new Map<number, number>();
    const pump = () => {
      for (let c = 0; c < clients; c++) {
        const sent = next.get(c) ?? 0;
        if (sent < perClient && cluster.completed(c, sent)) {
          next.set(c, sent + 1);
          cluster.submit(c, sent + 1, write(`k${(c + sent) % 3}`, `c${c}-${sent}`));
        }
      }
    };
    const allDone = () => [...Array(clients).keys()].every((c) => cluster.completed(c, perClient));
    let victim = 0;
    for (let step = 0; step < 400 && !allDone(); step++) {
      pump();
      if (step % 40 === 10) cluster.crash(victim);
      if (step % 40 === 30) {
        cluster.restart(victim);
        victim = (victim + 2) % 5;
      }
      cluster.runFor(50_000);
    }
    for (const node of cluster.nodes) if (node.crashed) cluster.restart(node.id);
    expect(cluster.runUntil(() => (pump(), allDone()), 60_000_000)).toBe(true);
    cluster.runFor(5_000_000);
    expectConverged(cluster, [0, 1, 2, 3, 4], ['k0', 'k1', 'k2']);
    expect(writtenValues(cluster, 0)).toHaveLength(clients * perClient);
  });
});

describe('EPaxos under message faults', () => {
  for (const seed of [1, 2, 3]) {
    it(`completes every request under loss, duplication and reordering (seed ${seed})`, () => {
      const cluster = new TestCluster({ n: 5, seed, faults: { dropRate: 0.2, duplicateRate: 0.2, minDelayUs: 200, maxDelayUs: 8_000 } });
      const clients = 5;
      const perClient = 20;
      const next = new Map<number, number>();
      const pump = (): boolean => {
        for (let c = 0; c < clients; c++) {
          const sent = next.get(c) ?? 0;
          if (sent < perClient && cluster.completed(c, sent)) {
            next.set(c, sent + 1);
            cluster.submit(c, sent + 1, write(`k${(c * 7 + sent) % 3}`, `c${c}-${sent}`));
          }
        }
        return [...Array(clients).keys()].every((c) => cluster.completed(c, perClient));
      };
      expect(cluster.runUntil(pump, 120_000_000)).toBe(true);
      cluster.runFor(5_000_000);
      expectConverged(cluster, [0, 1, 2, 3, 4], ['k0', 'k1', 'k2']);
      expect(writtenValues(cluster, 0)).toHaveLength(clients * perClient);
    });
  }

  it('a partitioned replica’s clients fail over, and the replica catches up after the partition heals', () => {
    const cluster = new TestCluster({ n: 5, seed: 'partition', faults: { minDelayUs: 500, maxDelayUs: 2_000 } });
    cluster.partition([0]);
    for (let c = 0; c < 5; c++) cluster.submit(c, 1, write('p', `v${c}`));
    expect(cluster.runUntil(() => [0, 1, 2, 3, 4].every((c) => cluster.completed(c, 1)), 20_000_000)).toBe(true);
    expect(writtenValues(cluster, 0)).toEqual([]);
    cluster.heal();
    cluster.runFor(5_000_000);
    expectConverged(cluster, [0, 1, 2, 3, 4], ['p']);
    expect(writtenValues(cluster, 0)).toHaveLength(5);
  });

  it('a minority partition makes no progress alone and finishes its pending instances after healing', () => {
    const cluster = new TestCluster({ n: 5, seed: 'minority', faults: { minDelayUs: 500, maxDelayUs: 2_000 } });
    cluster.partition([0, 1]);
    cluster.submit(0, 1, write('m', 'from-minority'));
    cluster.runFor(300_000);
    // Within the client's first timeout nothing can commit on the minority side.
    expect(cluster.transitions.filter((t) => t.phase === 'commit')).toHaveLength(0);
    cluster.heal();
    expect(cluster.runUntil(() => cluster.completed(0, 1), 20_000_000)).toBe(true);
    cluster.runFor(3_000_000);
    expectConverged(cluster, [0, 1, 2, 3, 4], ['m']);
  });
});

describe('EPaxos authentication', () => {
  it('ignores forged and malformed messages', () => {
    const cluster = new TestCluster({ n: 3, seed: 'forged' });
    const cmd = { clientId: 9, requestId: 1, op: { kind: 'write', key: 'k', value: 'evil' } };
    const body = { ballot: 0, replica: 1, instance: 0, cmd, seq: 1, deps: [-1, -1, -1], executedEverywhere: [-1, -1, -1] };
    const wrongKey = createAuthenticator('another-secret', 1, 3);
    const node2 = createAuthenticator('test-cluster-secret', 2, 3);
    const realNode1 = createAuthenticator('test-cluster-secret', 1, 3);
    const forged: Message[] = [
      { type: 'COMMIT', from: 1, ...body },
      wrongKey.sign({ type: 'COMMIT', from: 1, ...body }),
      { ...node2.sign({ type: 'COMMIT', from: 2, ...body }), from: 1 },
      { ...realNode1.sign({ type: 'COMMIT', from: 1, ...body }), seq: 2 },
      realNode1.sign({ type: 'COMMIT', from: 1, ...body, deps: [-1] }),
      realNode1.sign({ type: 'PREPARE', from: 1, ballot: 5, replica: 0, instance: 0 }), // ballot 5 belongs to node 2
    ];
    for (const m of forged) cluster.inject(0, m);
    cluster.submit(0, 1, write('k', 'good'));
    expect(cluster.runUntil(() => cluster.completed(0, 1), 2_000_000)).toBe(true);
    cluster.runFor(1_000_000);
    for (const node of cluster.nodes) expect(writtenValues(cluster, node.id)).toEqual(['good']);
    expect(cluster.transitions.filter((t) => t.node === 0 && t.phase === 'prepare_reply')).toHaveLength(0);
    // Fast path: the forged PREPARE did not raise node 0's ballot for its instance.
    expect(cluster.sentOfType('ACCEPT')).toHaveLength(0);
  });
});
