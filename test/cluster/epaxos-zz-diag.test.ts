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

function runChaos(n: number, seed: number): { cluster: TestCluster; mutationsSubmitted: number } {
  const rng = createRng(`chaos-${n}-${seed}`);
  const f = Math.floor((n - 1) / 2);
  const cluster = new TestCluster({
    n,
    seed: `chaos-${n}-${seed}`,
    faults: { dropRate: 0.1 + rng.next() * 0.3, duplicateRate: rng.next() * 0.1, minDelayUs: 200, maxDelayUs: 1_000 + rng.int(9_000) },
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
  for (let step = 0; step < 120 && !pump(); step++) {
    const crashed = cluster.nodes.filter((node) => node.crashed);
    const roll = rng.next();
    if (roll < 0.25 && crashed.length < n - 1) cluster.crash(rng.int(n));
    else if (roll < 0.3 && crashed.length > 0) cluster.restart(crashed[rng.int(crashed.length)]!.id);
    else if (roll < 0.38) cluster.partition(Array.from({ length: 1 + rng.int(n - 1) }, () => rng.int(n)));
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


import { it as it2 } from 'vitest';
it2('diag', () => {
  for (const seed of [9, 1]) {
  const { cluster } = runChaos(3, seed);
  const spaces = cluster.nodes.map((node) => (node.replica as any).spaces as Map<number, any>[]);
  let diffs = 0;
  for (let q = 0; q < 3; q++) {
    const maxJ = Math.max(...spaces.map((s) => Math.max(-1, ...s[q]!.keys())));
    for (let j = 0; j <= maxJ; j++) {
      const recs = spaces.map((s) => s[q]!.get(j));
      const views = recs.map((r) => (r ? JSON.stringify([r.status, r.attrs?.cmd?.op?.value ?? r.attrs?.cmd?.op?.kind ?? null, r.attrs?.seq, r.attrs?.deps]) : 'missing'));
      if (new Set(views).size > 1 && diffs++ < 10) console.log(`seed ${seed} inst ${q}.${j}`, views.join(' | '));
    }
  }
  for (const node of cluster.nodes) console.log(seed, node.id, node.stateMachine.log.filter((o) => o.key === 'a' && o.kind !== 'read').map((o: any) => o.value).join(','));
  }
});
