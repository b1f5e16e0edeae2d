/**
 * Metrics snapshots from the simulator: one per live replica and client every 100 ms of virtual
 * time, counting what the protocol did — per-peer traffic that matches the trace's own counters,
 * rejections by reason when a Byzantine node forges, quorum waits and who completed them last —
 * and nothing from a crashed node while it is down.
 */
import { describe, expect, it } from 'vitest';
import { validateMetricsSnapshot, type MetricsSnapshot } from '../../core/metrics-snapshot.ts';
import { MemorySink } from '../../core/sink.ts';
import { loadScenarioFile, validateScenario } from '../../cluster/chaos/scenario.ts';
import { pbftProtocol } from '../../cluster/pbft/index.ts';
import { epaxosProtocol } from '../../cluster/epaxos/index.ts';
import { scenarioPath } from '../../cluster/protocols.ts';
import { runSimulation } from '../../cluster/run.ts';
import { SIM_EPOCH_US } from '../../cluster/sim/simulator.ts';

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
const replicaSnapshots = (snapshots: readonly MetricsSnapshot[], node: number) => snapshots.filter((s) => s.source === 'replica' && s.node === node);

describe('metrics snapshots in the simulator', () => {
  it('every 100 ms per live replica and client, valid, numbered, and agreeing with the trace counters', async () => {
    const scenario = validateScenario({ name: 'telemetry-baseline', protocol: 'pbft', nodes: 4, clients: 3, duration_ms: 600, workload: { think_ms: 2 } });
    const sink = new MemorySink();
    const result = await runSimulation({ protocol: pbftProtocol, scenario, seed: 3, sink });
    expect(result.ok).toBe(true);
    expect(result.snapshots).toBe(sink.snapshots.length);
    for (const s of sink.snapshots) expect(validateMetricsSnapshot(s).ok, JSON.stringify(s)).toBe(true);
    const virtualMs = result.virtualDurationUs / 1000;
    for (const node of [0, 1, 2, 3]) {
      const mine = replicaSnapshots(sink.snapshots, node);
      expect(mine.length).toBe(Math.floor(virtualMs / 100));
      expect(mine.map((s) => s.snap_seq)).toEqual(mine.map((_, i) => i));
      expect(mine.every((s) => s.interval_us === 100_000 && (s.ts_us - SIM_EPOCH_US) % 100_000 === 0)).toBe(true);
      // Per-peer sends add up to what the node's records say it sent, up to the last snapshot.
      const lastTs = mine.at(-1)!.ts_us;
      const recorded = sink.records.filter((r) => r.node === node && r.ts_us <= lastTs).reduce((n, r) => n + r.msgs_sent, 0);
      const replies = 0; // replies to clients are not peer traffic
      expect(sum(mine.map((s) => sum(s.sent_to)))).toBeLessThanOrEqual(recorded - replies);
      expect(sum(mine.map((s) => sum(s.sent_to)))).toBeGreaterThan(0.5 * recorded);
      expect(sum(mine.map((s) => s.quorums_completed))).toBeGreaterThan(0);
      // The replica's progress report: its log holds entries under load, and backlog is bounded by it.
      expect(mine.some((s) => s.log_size > 0)).toBe(true);
      expect(mine.every((s) => s.view === 0)).toBe(true);
    }
    const clients = sink.snapshots.filter((s) => s.source === 'client');
    expect(new Set(clients.map((s) => s.node))).toEqual(new Set([0, 1, 2]));
    expect(sum(clients.map((s) => s.client_ops_completed))).toBeLessThanOrEqual(result.completedOps);
    expect(sum(clients.map((s) => s.client_ops_completed))).toBeGreaterThan(0.8 * result.completedOps);
    expect(clients.every((s) => s.client_latency_us_max * s.client_ops_completed >= s.client_latency_us_sum)).toBe(true);
  });

  it('a crashed replica reports nothing while it is down, then resumes its numbering', async () => {
    const scenario = validateScenario({ name: 'telemetry-crash', protocol: 'pbft', nodes: 4, clients: 3, duration_ms: 800, workload: { think_ms: 2 }, faults: [{ at_ms: 250, duration_ms: 300, kind: 'crash', nodes: [2] }] });
    const sink = new MemorySink();
    await runSimulation({ protocol: pbftProtocol, scenario, seed: 5, sink });
    const atMs = (s: MetricsSnapshot) => (s.ts_us - SIM_EPOCH_US) / 1000;
    const node2 = replicaSnapshots(sink.snapshots, 2);
    expect(node2.filter((s) => atMs(s) > 250 && atMs(s) < 550)).toEqual([]);
    expect(node2.filter((s) => atMs(s) >= 600).length).toBeGreaterThan(0);
    expect(node2.map((s) => s.snap_seq)).toEqual(node2.map((_, i) => i));
    // The others keep reporting, labelled with the crash, and stop hearing from node 2.
    const node0During = replicaSnapshots(sink.snapshots, 0).filter((s) => atMs(s) >= 400 && atMs(s) <= 500);
    expect(node0During.length).toBeGreaterThan(0);
    for (const s of node0During) {
      expect(s.faults).toContain('crash');
      expect(s.received_from[s.peers.indexOf(2)]).toBe(0);
    }
  });

  it('counts rejections by reason: a backup forging votes is refused for bad MACs and wrong digests', async () => {
    const sink = new MemorySink();
    const result = await runSimulation({ protocol: pbftProtocol, scenario: loadScenarioFile(scenarioPath('pbft-forged-vote')), seed: 1, sink });
    expect(result.ok).toBe(true);
    const correct = sink.snapshots.filter((s) => s.source === 'replica' && s.node !== 2);
    expect(sum(correct.map((s) => s.rejected_bad_mac))).toBeGreaterThan(0);
    expect(sum(correct.map((s) => s.rejected_wrong_digest))).toBeGreaterThan(0);
    // Before the fault, nothing is refused for those reasons.
    const before = correct.filter((s) => (s.ts_us - SIM_EPOCH_US) / 1000 <= 200);
    expect(sum(before.map((s) => s.rejected_bad_mac + s.rejected_wrong_digest))).toBe(0);
  });

  it('a slow replica that fast quorums leave out stands out by its vote waits, seen by its peers (EPaxos)', async () => {
    const scenario = validateScenario({ name: 'telemetry-slow', protocol: 'epaxos', nodes: 5, clients: 4, duration_ms: 800, workload: { think_ms: 2 }, faults: [{ at_ms: 200, duration_ms: 500, kind: 'delay', delay_ms: 3, nodes: [4] }] });
    const sink = new MemorySink();
    const result = await runSimulation({ protocol: epaxosProtocol, scenario, seed: 2, sink });
    expect(result.ok).toBe(true);
    const atMs = (s: MetricsSnapshot) => (s.ts_us - SIM_EPOCH_US) / 1000;
    const meanWaitByPeer = (snapshots: readonly MetricsSnapshot[]) => {
      const sums = new Map<number, [number, number]>();
      for (const s of snapshots) s.peers.forEach((peer, i) => {
        const [w, n] = sums.get(peer) ?? [0, 0];
        sums.set(peer, [w + s.vote_wait_us_sum[i]!, n + s.votes_from[i]!]);
      });
      return new Map([...sums].map(([peer, [w, n]]) => [peer, n === 0 ? 0 : w / n]));
    };
    const peersOf4 = sink.snapshots.filter((s) => s.source === 'replica' && s.node !== 4);
    const during = meanWaitByPeer(peersOf4.filter((s) => atMs(s) > 300 && atMs(s) <= 700));
    const before = meanWaitByPeer(peersOf4.filter((s) => atMs(s) <= 200));
    const others = [...during].filter(([peer]) => peer !== 4).map(([, w]) => w);
    // The 3 ms one-way delay doubles as a round trip: node 4's votes come ≥ 5 ms later than anyone's.
    expect(during.get(4)!).toBeGreaterThan(Math.max(...others) + 5_000);
    expect(before.get(4)!).toBeLessThan(Math.max(...[...before].filter(([p]) => p !== 4).map(([, w]) => w)) + 1_000);
  });

  it('is reproducible: the same seed gives the same snapshot hash', async () => {
    const scenario = validateScenario({ name: 'telemetry-replay', protocol: 'pbft', nodes: 4, clients: 2, duration_ms: 300 });
    const a = await runSimulation({ protocol: pbftProtocol, scenario, seed: 9, sink: new MemorySink() });
    const b = await runSimulation({ protocol: pbftProtocol, scenario, seed: 9, sink: new MemorySink() });
    expect(a.snapshotHash).toBe(b.snapshotHash);
    expect(a.snapshots).toBeGreaterThan(0);
  });
});
