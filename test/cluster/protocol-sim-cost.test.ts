/**
 * What a simulated operation costs in simulator events, and that the protocols stay
 * deterministic per seed with the timers they arm and cancel. Event counts are deterministic
 * (no wall clock), so the bounds below are exact properties of the protocol code, not timings.
 */
import { describe, expect, it } from 'vitest';
import { MemorySink } from '../../core/sink.ts';
import { loadScenarioFile, validateScenario, type Scenario } from '../../cluster/chaos/scenario.ts';
import { protocolByName, scenarioPath } from '../../cluster/protocols.ts';
import { runSimulation } from '../../cluster/run.ts';

/** The benchmark's light load (bench/cluster-sim.ts), shortened: ops come and go between ticks. */
function lightLoad(protocol: 'pbft' | 'epaxos'): Scenario {
  const file = loadScenarioFile(scenarioPath(`${protocol}-baseline`));
  return { ...file, clients: 2, duration_ms: 3_000, quiet_ms: 5_000, workload: { ...file.workload, think_ms: 100 } };
}

describe('protocol cost in simulator events', () => {
  it('PBFT at light load spends its events on protocol messages, not on idle timers', async () => {
    // Without metrics snapshots: their ticks are the harness's events, not the protocol's.
    const result = await runSimulation({ protocol: protocolByName('pbft'), scenario: lightLoad('pbft'), seed: 1, sink: new MemorySink(), snapshotIntervalUs: 0 });
    expect(result.ok).toBe(true);
    expect(result.completedOps).toBeGreaterThan(40);
    // Per op with n = 4: request, pre-prepare 3, prepare 9, commit 12, replies 4 = 29, plus
    // checkpoints. A retransmission timer left armed after catching up used to add about 2.
    expect(result.simEvents / result.completedOps).toBeLessThan(30.5);
  });

  it('EPaxos at light load: idle replicas tick slowly and sync with one peer at a time', async () => {
    const scenario = lightLoad('epaxos');
    const result = await runSimulation({ protocol: protocolByName('epaxos'), scenario, seed: 1, sink: new MemorySink(), snapshotIntervalUs: 0 });
    expect(result.ok).toBe(true);
    expect(result.completedOps).toBeGreaterThan(40);
    // Per op with n = 5: request, pre-accept 4, replies 4, commit 4, reply 1 = 14. Ticking every
    // quarter timeout and broadcasting SYNC every timeout on every replica used to add about 10.
    expect(result.simEvents / result.completedOps).toBeLessThan(17.5);
    // What is left beyond about 15 events per op, per replica-second of virtual time: one idle
    // tick and one SYNC per second (it was about 40: 4 ticks and 4 SYNC messages per 200 ms).
    const nodeSeconds = (result.virtualDurationUs / 1e6) * scenario.nodes;
    expect((result.simEvents - 15 * result.completedOps) / nodeSeconds).toBeLessThan(6);
  });
});

describe('protocol determinism per seed', () => {
  const faults = [
    { at_ms: 50, duration_ms: 150, kind: 'crash', nodes: [1] },
    { at_ms: 100, duration_ms: 200, kind: 'drop', rate: 0.1 },
    { at_ms: 150, duration_ms: 200, kind: 'reorder', rate: 0.3 },
    { at_ms: 250, duration_ms: 100, kind: 'partition', groups: [[0, 1], [2, 3]] },
  ];
  for (const [name, nodes] of [['pbft', 4], ['epaxos', 5]] as const) {
    it(`${name}: the same seed gives the same trace hash under crashes, loss, reordering and a partition`, async () => {
      const scenario = validateScenario({ name: `${name}-determinism`, protocol: name, nodes, duration_ms: 500, quiet_ms: 5_000, clients: 4, workload: { think_ms: 1 }, faults });
      const protocol = protocolByName(name);
      const first = await runSimulation({ protocol, scenario, seed: 7, sink: new MemorySink(), keepHistory: true });
      const second = await runSimulation({ protocol, scenario, seed: 7, sink: new MemorySink(), keepHistory: true });
      const other = await runSimulation({ protocol, scenario, seed: 8, sink: new MemorySink() });
      expect(first.ok).toBe(true);
      expect(second.traceHash).toBe(first.traceHash);
      expect(second.simEvents).toBe(first.simEvents);
      expect(first.history?.length).toBeGreaterThan(0);
      expect(second.history).toEqual(first.history);
      expect(other.traceHash).not.toBe(first.traceHash);
    });
  }
});
