/**
 * A chaos sweep: random scenarios within the fault model (generate.ts), each must be safe and
 * live. LATTICE_CHAOS_SEEDS sets the number per protocol (default 4; `npm run test:chaos` uses 200).
 */
import { describe, expect, it } from 'vitest';
import { generateScenarios } from '../../cluster/chaos/generate.ts';
import { epaxosProtocol } from '../../cluster/epaxos/index.ts';
import { pbftProtocol } from '../../cluster/pbft/index.ts';
import { runSimulation } from '../../cluster/run.ts';

const count = Number(process.env.LATTICE_CHAOS_SEEDS ?? 4);
const discard = { async write() {} };

describe('chaos sweep', () => {
  it(`EPaxos: ${count} generated scenarios are safe and live`, async () => {
    for (const [i, { scenario }] of generateScenarios({ count, seed: 2026, protocol: 'epaxos', durationMs: 600 }).entries()) {
      const result = await runSimulation({ protocol: epaxosProtocol, scenario, seed: 1000 + i, sink: discard });
      expect(result.safetyViolations, result.replay).toEqual([]);
      expect(result.completedOps, result.replay).toBe(result.submittedOps);
    }
  }, 600_000);

  it(`PBFT: ${count} generated scenarios are linearizable and live`, async () => {
    for (const [i, { scenario }] of generateScenarios({ count, seed: 2026, protocol: 'pbft', durationMs: 600 }).entries()) {
      const result = await runSimulation({ protocol: pbftProtocol, scenario, seed: 1000 + i, sink: discard });
      expect(result.linearizability?.result, result.replay).toBe('ok');
      expect(result.completedOps, result.replay).toBe(result.submittedOps);
      expect(result.safetyViolations.filter((v) => v.kind !== 'total-order' && v.kind !== 'duplicate-execution').map((v) => `${v.kind}: ${v.detail}`), result.replay).toEqual([]);
    }
  }, 600_000);
});
