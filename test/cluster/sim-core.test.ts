import { describe, expect, it } from 'vitest';
import { createRng } from '../../core/rng.ts';
import { EventQueue } from '../../cluster/sim/event-queue.ts';
import { SIM_EPOCH_US, Simulator } from '../../cluster/sim/simulator.ts';
import { DEFAULT_NETWORK, NetworkModel } from '../../cluster/sim/network.ts';

describe('EventQueue', () => {
  it('pops by time, then by insertion order', () => {
    const queue = new EventQueue<{ timeUs: number; order: number; label: string }>();
    const rng = createRng(7);
    const items = Array.from({ length: 500 }, (_, i) => ({ timeUs: rng.int(50), order: i, label: `e${i}` }));
    for (const item of items) queue.push(item);
    const popped: typeof items = [];
    for (let item = queue.pop(); item !== undefined; item = queue.pop()) popped.push(item);
    const expected = [...items].sort((a, b) => a.timeUs - b.timeUs || a.order - b.order);
    expect(popped.map((x) => x.label)).toEqual(expected.map((x) => x.label));
  });
});

describe('Simulator', () => {
  it('starts at the fixed epoch and runs events in time order, skipping cancelled ones', () => {
    const sim = new Simulator();
    expect(sim.nowUs()).toBe(Date.UTC(2026, 0, 1) * 1000);
    const seen: string[] = [];
    sim.schedule(30, 'timer', () => seen.push(`b@${sim.nowUs() - SIM_EPOCH_US}`));
    sim.schedule(10, 'timer', () => {
      seen.push(`a@${sim.nowUs() - SIM_EPOCH_US}`);
      sim.schedule(5, 'message', () => seen.push(`c@${sim.nowUs() - SIM_EPOCH_US}`));
    });
    const cancelled = sim.schedule(20, 'timer', () => seen.push('never'));
    sim.schedule(30, 'timer', () => seen.push('d@30'));
    sim.cancel(cancelled);
    expect(sim.runUntil(SIM_EPOCH_US + 100)).toBe(true);
    expect(seen).toEqual(['a@10', 'c@15', 'b@30', 'd@30']);
    expect(sim.nowUs()).toBe(SIM_EPOCH_US + 100);
    expect(sim.processed).toBe(4);
  });

  it('pauses when asked and resumes where it stopped', () => {
    const sim = new Simulator();
    let count = 0;
    for (let i = 1; i <= 10; i++) sim.schedule(i, 'client', () => count++);
    expect(sim.runUntil(SIM_EPOCH_US + 100, () => count === 4)).toBe(false);
    expect(count).toBe(4);
    expect(sim.nowUs()).toBe(SIM_EPOCH_US + 4);
    expect(sim.runUntil(SIM_EPOCH_US + 100)).toBe(true);
    expect(count).toBe(10);
  });
});

describe('NetworkModel', () => {
  const replica = (n: number) => ({ replica: n });

  it('draws latencies around the median with a tail, reproducibly per seed', () => {
    const sample = (seed: number) => {
      const net = new NetworkModel(DEFAULT_NETWORK, createRng(seed));
      return Array.from({ length: 4000 }, () => net.route(replica(0), replica(1))[0]!);
    };
    const a = sample(1);
    expect(sample(1)).toEqual(a);
    expect(sample(2)).not.toEqual(a);
    const sorted = [...a].sort((x, y) => x - y);
    const median = sorted[2000]!;
    expect(median).toBeGreaterThan(250);
    expect(median).toBeLessThan(350);
    expect(sorted[3999]!).toBeGreaterThan(2 * median);
    expect(sorted[0]!).toBeGreaterThanOrEqual(1);
  });

  it('applies drop, duplicate, reorder and delay rules to the links they target', () => {
    const net = new NetworkModel({ ...DEFAULT_NETWORK, jitter: 0, tailRate: 0 }, createRng(3));
    expect(net.route(replica(0), replica(1))).toEqual([300]);
    const drop = net.addRule({ kind: 'drop', nodes: new Set([2]), rate: 1, delayUs: 0 });
    expect(net.route(replica(0), replica(2))).toEqual([]);
    expect(net.route(replica(2), replica(1))).toEqual([]);
    expect(net.route(replica(0), replica(1))).toEqual([300]);
    net.removeRule(drop);
    net.addRule({ kind: 'duplicate', nodes: null, rate: 1, delayUs: 0 });
    expect(net.route(replica(0), replica(1))).toHaveLength(2);
    const slow = new NetworkModel({ ...DEFAULT_NETWORK, jitter: 0, tailRate: 0 }, createRng(3));
    slow.addRule({ kind: 'delay', nodes: null, links: [[0, 1]], rate: 1, delayUs: 5000 });
    expect(slow.route(replica(0), replica(1))).toEqual([5300]);
    expect(slow.route(replica(1), replica(0))).toEqual([300]);
    slow.addRule({ kind: 'reorder', nodes: null, rate: 1, delayUs: 10_000 });
    const delays = Array.from({ length: 200 }, () => slow.route(replica(2), replica(3))[0]!);
    expect(new Set(delays).size).toBeGreaterThan(50);
    expect(Math.max(...delays)).toBeGreaterThan(5000);
    expect(slow.stats.reordered).toBe(200);
  });

  it('drops messages between partition groups but not within them or from clients', () => {
    const net = new NetworkModel(DEFAULT_NETWORK, createRng(4));
    net.setPartition([[0, 1], [2]], 4);
    expect(net.route(replica(0), replica(1))).toHaveLength(1);
    expect(net.route(replica(0), replica(2))).toEqual([]);
    // Node 3 is in no listed group: it forms the remaining group on its own.
    expect(net.route(replica(3), replica(0))).toEqual([]);
    expect(net.route({ client: 0 }, replica(2))).toHaveLength(1);
    expect(net.stats.partitioned).toBe(2);
    net.heal();
    expect(net.route(replica(0), replica(2))).toHaveLength(1);
  });
});
