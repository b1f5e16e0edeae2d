/**
 * The chaos sweep: random scenarios within the fault model (generate.ts) mixing every fault type,
 * each run must be safe (total order for PBFT, per-key order, exactly-once, no shadow mismatch on a
 * correct replica), linearizable, and live. LATTICE_CHAOS_SEEDS sets the number of runs per
 * protocol (default 6 in `npm test`; `npm run test:chaos` runs 200). Every failing run is listed
 * with its replay line.
 */
import { describe, expect, it } from 'vitest';
import { DiscardSink } from '../../core/sink.ts';
import { generateScenarios } from '../../cluster/chaos/generate.ts';
import { EPAXOS_BEYOND_KINDS } from '../../cluster/chaos/fault-model.ts';
import { epaxosProtocol } from '../../cluster/epaxos/index.ts';
import { pbftProtocol } from '../../cluster/pbft/index.ts';
import type { ProtocolDefinition } from '../../cluster/protocol.ts';
import { runSimulation } from '../../cluster/run.ts';
import { FAULT_KINDS, type FaultKind } from '../../core/trace-schema.ts';

const count = Number(process.env.LATTICE_CHAOS_SEEDS ?? 6);
const discard = new DiscardSink();

async function sweep(protocol: ProtocolDefinition) {
  const failures: string[] = [];
  const kindsSeen = new Set<FaultKind>();
  let amnesiaRuns = 0;
  let runs = 0;
  for (const [i, { scenario }] of generateScenarios({ count, seed: 2026, protocol: protocol.name, durationMs: 600 }).entries()) {
    const result = await runSimulation({ protocol, scenario, seed: 1000 + i, sink: discard });
    runs++;
    for (const fault of scenario.faults) kindsSeen.add(fault.kind);
    if (scenario.faults.some((fault) => fault.kind === 'crash' && fault.amnesia === true)) amnesiaRuns++;
    const problems = [
      ...result.safetyViolations.map((v) => `${v.kind}: ${v.detail}`),
      ...(result.linearizability?.result === 'ok' ? [] : [`linearizability: ${result.linearizability?.result ?? 'not checked'}`]),
      ...(result.beyondFaultModel ? [`generator left the fault model: ${result.faultModelReasons.join('; ')}`] : []),
    ];
    if (problems.length > 0) failures.push(`${result.replay} (replay: lattice chaos run ... --seed ${result.seed})\n    ${problems.slice(0, 3).join('\n    ')}`);
  }
  return { failures, kindsSeen, amnesiaRuns, runs };
}

describe('chaos sweep', () => {
  it(`EPaxos: ${count} generated scenarios are safe, linearizable and live`, async () => {
    const { failures, kindsSeen, amnesiaRuns, runs } = await sweep(epaxosProtocol);
    expect(runs).toBe(count);
    expect(amnesiaRuns).toBe(0);
    expect(failures, failures.join('\n')).toEqual([]);
    if (count >= 100) expect([...kindsSeen].sort()).toEqual(FAULT_KINDS.filter((k) => !EPAXOS_BEYOND_KINDS.has(k)).sort());
  }, 3_600_000);

  it(`PBFT: ${count} generated scenarios are safe, linearizable and live`, async () => {
    const { failures, kindsSeen, amnesiaRuns, runs } = await sweep(pbftProtocol);
    expect(runs).toBe(count);
    expect(failures, failures.join('\n')).toEqual([]);
    if (count >= 100) expect([...kindsSeen].sort()).toEqual([...FAULT_KINDS].sort());
    if (count >= 100) expect(amnesiaRuns).toBeGreaterThan(0);
  }, 3_600_000);
});
