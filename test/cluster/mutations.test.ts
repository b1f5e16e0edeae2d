/**
 * Mutation testing of the checkers: known protocol bugs are switched on through
 * `ProtocolOptions.mutations`, and the chaos runs must catch each one (a run with `ok === false`
 * and a violation of the kind that bug produces) within a bounded number of seeds, while the
 * unmutated protocol passes the same seeds. If a checker went blind, or a scenario stopped
 * exercising the bug, the matching test fails.
 *
 * Scenarios are small and aimed at the bug (thin workloads, short fault periods, all within the
 * fault model), since a generic sweep needs far more seeds to hit the narrow windows some of
 * these bugs need (see the comment on each scenario).
 */
import { describe, expect, it } from 'vitest';
import { DiscardSink } from '../../core/sink.ts';
import { generateScenarios } from '../../cluster/chaos/generate.ts';
import { validateScenario, type Scenario, type ScenarioInput } from '../../cluster/chaos/scenario.ts';
import { epaxosProtocol } from '../../cluster/epaxos/index.ts';
import { pbftProtocol } from '../../cluster/pbft/index.ts';
import type { ProtocolDefinition, ProtocolMutation } from '../../cluster/protocol.ts';
import { runSimulation, type RunResult } from '../../cluster/run.ts';
import type { RunViolationKind } from '../../cluster/sim/checks.ts';

const discard = new DiscardSink();
const FIRST_SEED = 1000;

function scenario(input: ScenarioInput): Scenario {
  return validateScenario({ quiet_ms: 20_000, ...input }, String(input.name));
}

/** PBFT n = 4: the primary equivocates (two-faced pre-prepares to its backups), then crashes,
 * forcing a view change while backups hold conflicting certificates for the same (v, n). */
const pbftEquivocateThenCrash = scenario({
  name: 'mut-pbft-equivocate-then-crash',
  protocol: 'pbft',
  nodes: 4,
  duration_ms: 600,
  clients: 4,
  workload: { keys: 3, think_ms: 1 },
  faults: [
    { kind: 'equivocation', at_ms: 20, duration_ms: 400, nodes: [0] },
    { kind: 'crash', at_ms: 400, duration_ms: 150, nodes: [0] },
  ],
});

/** PBFT n = 4: lossy network, then the primary crashes: at the view change some replicas have
 * executed batches others have only prepared, so O must carry the prepared certificates. */
const pbftLossyCrashPrimary = scenario({
  name: 'mut-pbft-lossy-crash-primary',
  protocol: 'pbft',
  nodes: 4,
  duration_ms: 600,
  clients: 4,
  workload: { keys: 3, think_ms: 1 },
  faults: [
    { kind: 'drop', at_ms: 0, rate: 0.2 },
    { kind: 'crash', at_ms: 250, duration_ms: 300, nodes: [0] },
  ],
});

/**
 * PBFT n = 4, the commit-quorum window. For 250 ms every message into replicas 1 and 2 from the
 * other backups takes 3 s, so only the primary (0) and replica 3 become prepared; with the bug, 3
 * commits on {0, 3} alone. Then 0 crashes and returns with amnesia (its prepared certificates
 * gone: it is the one faulty node) while 3 is cut off, so the VIEW-CHANGE quorum {0, 1, 2} holds
 * no certificate and the new primary fills 3's sequence numbers with other requests. Correct
 * PBFT never commits there: 2f+1 commits need a prepared replica among 1 and 2.
 */
const pbftAmnesiaAfterThinCommit = scenario({
  name: 'mut-pbft-amnesia-after-thin-commit',
  protocol: 'pbft',
  nodes: 4,
  duration_ms: 1000,
  clients: 3,
  workload: { keys: 3, think_ms: 1 },
  faults: [
    { kind: 'delay', at_ms: 0, duration_ms: 250, delay_ms: 3000, links: [[2, 1], [3, 1], [1, 2], [3, 2]] },
    { kind: 'crash', at_ms: 100, duration_ms: 50, nodes: [0], amnesia: true },
    { kind: 'partition', at_ms: 100, duration_ms: 800, groups: [[3], [0, 1, 2]] },
  ],
});

/** EPaxos n = 5, fault-free, two keys and a client per command leader: nearly every command
 * conflicts with a concurrent one from another leader. */
const epaxosHighConflict = scenario({
  name: 'mut-epaxos-high-conflict',
  protocol: 'epaxos',
  nodes: 5,
  duration_ms: 400,
  clients: 5,
  workload: { keys: 2, read: 0.3, write: 0.5, cas: 0.2, think_ms: 1 },
  faults: [],
});

/**
 * EPaxos n = 7 (F = 3; fast quorum 5, majority 4 — for n = 5 the two are both 3, so the bug only
 * exists from n = 7). Replicas 4-6 are down at first, so leader 0 hears only from 1, 2, 3, and
 * 3's replies come 10 ms late. When {0, 1, 2} is cut off from {3..6}, commands leader 0 has just
 * "fast-committed" with {1, 2, 3} are recovered by the majority, which sees one pre-accept
 * holder, so it cannot know about the fast commit and re-runs phase 1 with new deps.
 */
const epaxosFastCommitThenPartition = scenario({
  name: 'mut-epaxos7-fast-commit-then-partition',
  protocol: 'epaxos',
  nodes: 7,
  duration_ms: 900,
  clients: 14,
  workload: { keys: 4, read: 0.2, write: 0.6, cas: 0.2, think_ms: 1 },
  faults: [
    { kind: 'crash', at_ms: 0, duration_ms: 300, nodes: [4, 5, 6] },
    { kind: 'delay', at_ms: 0, duration_ms: 900, delay_ms: 10, links: [[3, 0]] },
    { kind: 'partition', at_ms: 250, duration_ms: 600, groups: [[0, 1, 2], [3, 4, 5, 6]] },
  ],
});

interface MutationCase {
  readonly mutation: ProtocolMutation;
  readonly protocol: ProtocolDefinition;
  readonly scenario: Scenario;
  /** Seeds tried, FIRST_SEED onwards. */
  readonly seeds: number;
  /** The checkers this bug must trip (at least one of them). */
  readonly caughtBy: readonly RunViolationKind[];
}

const CASES: readonly MutationCase[] = [
  { mutation: 'commit-quorum-2f', protocol: pbftProtocol, scenario: pbftAmnesiaAfterThinCommit, seeds: 10, caughtBy: ['total-order'] },
  { mutation: 'prepare-quorum-f', protocol: pbftProtocol, scenario: pbftEquivocateThenCrash, seeds: 30, caughtBy: ['total-order'] },
  { mutation: 'no-cert-carryover', protocol: pbftProtocol, scenario: pbftLossyCrashPrimary, seeds: 15, caughtBy: ['total-order'] },
  { mutation: 'majority-fast-quorum', protocol: epaxosProtocol, scenario: epaxosFastCommitThenPartition, seeds: 15, caughtBy: ['per-key-order', 'linearizability'] },
  { mutation: 'no-deps-union', protocol: epaxosProtocol, scenario: epaxosHighConflict, seeds: 5, caughtBy: ['per-key-order', 'linearizability'] },
  { mutation: 'exec-ignore-deps', protocol: epaxosProtocol, scenario: epaxosHighConflict, seeds: 5, caughtBy: ['per-key-order', 'linearizability'] },
];

function run(c: { protocol: ProtocolDefinition; scenario: Scenario }, seed: number, mutations: readonly ProtocolMutation[]): Promise<RunResult> {
  return runSimulation({ protocol: c.protocol, scenario: c.scenario, seed, sink: discard, protocolOptions: { mutations } });
}

function summary(result: RunResult): string {
  const kinds = [...new Set(result.safetyViolations.map((v) => v.kind))].join(', ');
  return `${result.replay}: ${kinds}\n    ${result.safetyViolations[0]?.detail ?? ''}`;
}

describe('mutation testing: every known bug is caught by the checkers', () => {
  for (const c of CASES) {
    it(`${c.protocol.name} ${c.mutation} is caught within ${c.seeds} seeds of ${c.scenario.name}`, async () => {
      let caught: RunResult | null = null;
      for (let seed = FIRST_SEED; seed < FIRST_SEED + c.seeds && caught === null; seed++) {
        const result = await run(c, seed, [c.mutation]);
        expect(result.beyondFaultModel, result.replay).toBe(false);
        if (!result.ok) caught = result;
      }
      expect(caught, `${c.mutation} survived ${c.seeds} seeds of ${c.scenario.name}`).not.toBeNull();
      if (caught === null) return;
      console.log(`[mutation ${c.mutation}] first caught at seed ${caught.seed} (${caught.seed - FIRST_SEED + 1} of ${c.seeds}) by ${summary(caught)}`);
      const kinds = new Set(caught.safetyViolations.map((v) => v.kind));
      expect(c.caughtBy.some((k) => kinds.has(k)), summary(caught)).toBe(true);

      // The control: the unmutated protocol passes the catching seed and the first one.
      for (const seed of new Set([FIRST_SEED, caught.seed])) {
        const control = await run(c, seed, []);
        expect(control.safetyViolations, control.replay).toEqual([]);
        expect(control.linearizability?.result, control.replay).toBe('ok');
        expect(control.ok, control.replay).toBe(true);
      }
    }, 120_000);
  }
});

describe('mutation testing: the generic chaos sweep catches the easy ones too', () => {
  // The same corpus as chaos-sweep.test.ts (seed 2026, 600 ms, run seed 1000 + i). It does not
  // reach prepare-quorum-f (needs equivocation then a view change in one run) nor
  // majority-fast-quorum (generated EPaxos clusters have 5 replicas, where F+1 = fast quorum).
  const sweepCases: ReadonlyArray<{ mutation: ProtocolMutation; protocol: ProtocolDefinition; count: number }> = [
    { mutation: 'no-deps-union', protocol: epaxosProtocol, count: 3 },
    { mutation: 'exec-ignore-deps', protocol: epaxosProtocol, count: 3 },
    { mutation: 'no-cert-carryover', protocol: pbftProtocol, count: 15 },
  ];
  for (const c of sweepCases) {
    it(`${c.protocol.name} ${c.mutation} fails one of the first ${c.count} generated scenarios`, async () => {
      const corpus = generateScenarios({ count: c.count, seed: 2026, protocol: c.protocol.name, durationMs: 600 });
      let caught: RunResult | null = null;
      let index = 0;
      for (; index < corpus.length && caught === null; index++) {
        const result = await run({ protocol: c.protocol, scenario: corpus[index]!.scenario }, FIRST_SEED + index, [c.mutation]);
        if (!result.ok) caught = result;
      }
      expect(caught, `${c.mutation} survived ${c.count} generated scenarios`).not.toBeNull();
      if (caught === null) return;
      console.log(`[sweep ${c.mutation}] caught by generated scenario ${index - 1}: ${summary(caught)}`);
      const control = await run({ protocol: c.protocol, scenario: corpus[index - 1]!.scenario }, caught.seed, []);
      expect(control.ok, `${control.replay}: ${control.safetyViolations.map((v) => v.kind).join(', ')}`).toBe(true);
    }, 120_000);
  }
});
