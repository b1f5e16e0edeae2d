/**
 * The shadow model's promise: every injected state corruption is detected (a runtime/shadow
 * digest mismatch on the corrupted replica, at or after the injection), and fault-free runs raise
 * no mismatch at all. Seeds vary the corrupted node, the moment and the workload interleaving.
 */
import { describe, expect, it } from 'vitest';
import { DiscardSink } from '../../core/sink.ts';
import { createRng } from '../../core/rng.ts';
import { validateScenario, type Scenario } from '../../cluster/chaos/scenario.ts';
import { protocolByName } from '../../cluster/protocols.ts';
import { runSimulation } from '../../cluster/run.ts';

const SEEDS = Number(process.env.LATTICE_SHADOW_SEEDS ?? 20);
const discard = new DiscardSink();

function scenarioFor(protocol: 'pbft' | 'epaxos', seed: number, corrupt: boolean): Scenario {
  const rng = createRng(`shadow/${protocol}/${seed}`);
  const nodes = protocol === 'pbft' ? 4 : 5;
  return validateScenario({
    name: `shadow-${protocol}-${seed}`,
    protocol,
    nodes,
    duration_ms: 400,
    clients: 3,
    workload: { keys: 4, read: 0.3, write: 0.5, cas: 0.2, think_ms: 2 },
    faults: corrupt ? [{ at_ms: 20 + rng.int(300), kind: 'state_corruption', nodes: [rng.int(nodes)] }] : [],
  });
}

describe.each(['pbft', 'epaxos'] as const)('shadow model on %s', (name) => {
  const protocol = protocolByName(name);

  it(`detects every injected state corruption (${SEEDS} seeds)`, async () => {
    const missed: string[] = [];
    for (let seed = 1; seed <= SEEDS; seed++) {
      const scenario = scenarioFor(name, seed, true);
      const result = await runSimulation({ protocol, scenario, seed, sink: discard, checkLinearizability: false });
      const injections = result.faultLog.filter((e) => e.kind === 'state_corruption' && e.action === 'start');
      expect(injections.length).toBe(1);
      for (const injection of injections) {
        for (const node of injection.nodes) {
          const caught = result.shadowMismatches.some((m) => m.node === node && m.tsUs >= injection.timeUs);
          if (!caught) missed.push(`${result.replay}: corruption of node ${node} at ${injection.timeUs} not detected`);
        }
      }
    }
    expect(missed, missed.join('\n')).toEqual([]);
  }, 300_000);

  it(`raises no mismatch in fault-free runs (${SEEDS} seeds)`, async () => {
    for (let seed = 1; seed <= SEEDS; seed++) {
      const result = await runSimulation({ protocol, scenario: scenarioFor(name, seed, false), seed, sink: discard, checkLinearizability: false });
      expect(result.records).toBeGreaterThan(100);
      expect(result.shadowMismatches, result.replay).toEqual([]);
    }
  }, 300_000);
});
