/**
 * The scenario library against the real protocols. Workloads are thinned (think time 5 ms) to
 * keep the file fast; fault schedules are the library's own.
 */
import { describe, expect, it } from 'vitest';
import { DiscardSink } from '../../core/sink.ts';
import type { Scenario } from '../../cluster/chaos/scenario.ts';
import { loadScenarioLibrary } from '../../cluster/chaos/library.ts';
import { epaxosProtocol } from '../../cluster/epaxos/index.ts';
import { pbftProtocol } from '../../cluster/pbft/index.ts';
import { runSimulation } from '../../cluster/run.ts';

const discard = new DiscardSink();
const thin = (s: Scenario): Scenario => ({ ...s, clients: 3, workload: { ...s.workload, think_ms: 5 } });

describe('EPaxos under the scenario library', () => {
  for (const scenario of loadScenarioLibrary({ protocol: 'epaxos' })) {
    it(scenario.name, async () => {
      const result = await runSimulation({ protocol: epaxosProtocol, scenario: thin(scenario), seed: 3, sink: discard });
      expect(result.beyondFaultModel).toBe(scenario.name.includes('beyond'));
      expect(result.submittedOps).toBeGreaterThan(50);
      if (!result.beyondFaultModel) {
        expect(result.safetyViolations, result.replay).toEqual([]);
        expect(result.linearizability?.result, result.replay).toBe('ok');
        expect(result.completedOps).toBe(result.submittedOps);
      }
    });
  }
});

describe('PBFT under the scenario library', () => {
  for (const scenario of loadScenarioLibrary({ protocol: 'pbft' })) {
    it(scenario.name, async () => {
      const result = await runSimulation({ protocol: pbftProtocol, scenario: thin(scenario), seed: 3, sink: discard });
      expect(result.beyondFaultModel).toBe(false);
      expect(result.submittedOps).toBeGreaterThan(50);
      // Total order and exactly-once on correct replicas, linearizability, liveness, no shadow
      // mismatch on a correct replica: everything the run checks.
      expect(result.linearizability?.result, result.replay).toBe('ok');
      expect(result.completedOps, result.replay).toBe(result.submittedOps);
      expect(result.safetyViolations, result.replay).toEqual([]);
      expect(result.ok).toBe(true);
    });
  }
});
