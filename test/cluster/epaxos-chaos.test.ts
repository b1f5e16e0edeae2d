/**
 * A small seeded chaos sweep in the in-test harness (the real one runs in cluster/sim/): loss,
 * duplication, reordering, crash/restart of at most F nodes at a time, minority partitions that
 * heal. Within that fault model every request must complete (liveness) and every replica must
 * execute each command once, conflicting commands in one order (safety).
 */
import { describe, expect, it } from 'vitest';
import type { Operation } from '../../cluster/protocol.ts';
import { createRng } from '../../core/rng.ts';
import { TestCluster } from './epaxos-harness.ts';

const KEYS = ['a', 'b', 'c', 'd'];
/** More seeds for a deeper sweep: LATTICE_EPAXOS_SEEDS=100 npx vitest run test/cluster/epaxos-chaos.test.ts */
const SEEDS = Number(process.env.LATTICE_EPAXOS_SEEDS ?? 6);
const SIZES = (process.env.LATTICE_EPAXOS_SIZES ?? '3,5').split(',').map(Number);

/**
 * `harsh` goes beyond the fault model while the faults last (up to n-1 crashed, any partition,
 * 10–40% loss); liveness is only required after everything heals, safety always.
 */
function runChaos(n: number, seed: number, harsh = false): { cluster: TestCluster; mutationsSubmitted: number } {
  const rng = createRng(`chaos-${n}-${seed}`);
  const f = Math.floor((n - 1) / 2);
  const cluster = new TestCluster({
    n,
    seed: `chaos-${n}-${seed}`,
    faults: { dropRate: harsh ? 0.1 + rng.next() * 0.3 : rng.next() * 0.15, duplicateRate: rng.next() * 0.1, minDelayUs: 200, maxDelayUs: 1_000 + rng.int(9_000) },
  });
  const clients = n + 2;
  const perClient = 12;
  const next = new Map<number, number>();
  let mutationsSubmitted = 0;
  const pump = (): boolean => {
    for (let c = 0; c < clients; c++) {
      const sent = next.get(c) ?? 0;
      if (sent < perClient && cluster.completed(c, sent)) {
        next.set(c, sent + 1);
        const key = KEYS[(c + sent * 3) % KEYS.length]!;
        const roll = (c * 31 + sent * 17) % 10;
        const op: Operation =
          roll < 2 ? { kind: 'read', key } : roll < 3 ? { kind: 'cas', key, expected: null, value: `cas-c${c}-${sent}` } : { kind: 'write', key, value: `c${c}-${sent}` };
        if (op.kind !== 'read') mutationsSubmitted++;
        cluster.submit(c, sent + 1, op);
      }
    }
    return [...Array(clients).keys()].every((c) => cluster.completed(c, perClient));
  };
  const maxCrashed = harsh ? n - 1 : f;
  const maxPartitioned = harsh ? n - 1 : f;
  for (let step = 0; step < (harsh ? 120 : 60) && !pump(); step++) {
    const crashed = cluster.nodes.filter((node) => node.crashed);
    const roll = rng.next();
    if (roll < (harsh ? 0.25 : 0.15) && crashed.length < maxCrashed) cluster.crash(rng.int(n));
    else if (roll < 0.3 && crashed.length > 0) cluster.restart(crashed[rng.int(crashed.length)]!.id);
    else if (roll < 0.38) cluster.partition(Array.from({ length: 1 + rng.int(maxPartitioned) }, () => rng.int(n)));
    else if (roll < 0.5) cluster.heal();
    cluster.runUntil(pump, 100_000 + rng.int(400_000));
  }
  cluster.heal();
  for (const node of cluster.nodes) if (node.crashed) cluster.restart(node.id);
  expect(cluster.runUntil(pump, 120_000_000)).toBe(true);
  cluster.faults.dropRate = 0;
  cluster.runFor(5_000_000);
  return { cluster, mutationsSubmitted };
}

function expectAgreement(cluster: TestCluster, n: number, mutationsSubmitted: number): void {
  const mutations = (id: number, key: string) =>
    cluster
      .node(id)
      .stateMachine.log.filter((op) => op.key === key && op.kind !== 'read')
      .map((op) => (op.kind === 'read' ? '' : op.value));
  const reference = cluster.node(0).stateMachine.digest();
  for (const node of cluster.nodes) {
    expect(node.stateMachine.log.filter((op) => op.kind !== 'read')).toHaveLength(mutationsSubmitted);
    expect(node.stateMachine.digest()).toBe(reference);
    for (const key of KEYS) {
      const values = mutations(node.id, key);
      expect(new Set(values).size).toBe(values.length);
      expect(values).toEqual(mutations(0, key));
    }
  }
  expect(cluster.nodes).toHaveLength(n);
}

describe('EPaxos chaos sweep (in-test harness)', () => {
  for (const n of SIZES) {
    for (let seed = 1; seed <= SEEDS; seed++) {
      it(`n=${n} seed ${seed}: all requests complete; replicas agree`, () => {
        const { cluster, mutationsSubmitted } = runChaos(n, seed);
        expectAgreement(cluster, n, mutationsSubmitted);
      });
      // Seeds 1 and 9 at n=3 caught a replica voting for a stale ACCEPT on a committed instance.
      it(`n=${n} seed ${seed}, beyond the fault model until it heals: replicas agree`, () => {
        const { cluster, mutationsSubmitted } = runChaos(n, seed, true);
        expectAgreement(cluster, n, mutationsSubmitted);
      });
    }
  }
  it('n=3 harsh seed 9 (the stale-ACCEPT regression)', () => {
    const { cluster, mutationsSubmitted } = runChaos(3, 9, true);
    expectAgreement(cluster, 3, mutationsSubmitted);
  });
});
