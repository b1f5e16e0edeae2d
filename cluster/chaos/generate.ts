/**
 * Random scenario corpora for training and chaos sweeps: varied, labelled, and within the fault
 * model (at most f distinct crashed-or-misbehaving nodes per run; no Byzantine kinds for EPaxos),
 * so every run must be both safe and live. Some runs are fault-free: the "normal" class.
 */
import { createRng, type Rng } from '../../core/rng.ts';
import type { FaultKind, Protocol } from '../../core/trace-schema.ts';
import type { NodeId } from '../protocol.ts';
import { EPAXOS_BEYOND_KINDS, faultToleranceOf, judgeFaultModel } from './fault-model.ts';
import { validateScenario, type FaultSpec, type Scenario } from './scenario.ts';

export interface GenerateOptions {
  readonly count: number;
  readonly seed: number | string;
  readonly protocol: Protocol;
  /** Replicas per scenario (default 4 for PBFT, 5 for EPaxos). */
  readonly nodes?: number;
  readonly durationMs?: number;
  /** Share of fault-free scenarios (default 0.15). */
  readonly faultFreeShare?: number;
  readonly maxFaultsPerScenario?: number;
}

export interface ScenarioLabels {
  readonly faultFree: boolean;
  readonly kinds: readonly FaultKind[];
  readonly faultyNodes: readonly NodeId[];
  readonly beyondFaultModel: boolean;
}

export interface GeneratedScenario {
  readonly scenario: Scenario;
  readonly labels: ScenarioLabels;
}

const NETWORK_KINDS: readonly FaultKind[] = ['partition', 'delay', 'drop', 'duplicate', 'reorder'];
const PBFT_KINDS: readonly FaultKind[] = ['crash', ...NETWORK_KINDS, 'clock_skew', 'equivocation', 'forged_vote', 'withheld_vote', 'replay', 'silent', 'state_corruption'];
const EPAXOS_KINDS: readonly FaultKind[] = PBFT_KINDS.filter((kind) => !EPAXOS_BEYOND_KINDS.has(kind));

export function generateScenarios(options: GenerateOptions): GeneratedScenario[] {
  const rng = createRng(options.seed).fork(`generate/${options.protocol}`);
  const out: GeneratedScenario[] = [];
  for (let i = 0; i < options.count; i++) out.push(generateOne(options, rng.fork(`scenario/${i}`), i));
  return out;
}

function generateOne(options: GenerateOptions, rng: Rng, index: number): GeneratedScenario {
  const protocol = options.protocol;
  const nodes = options.nodes ?? (protocol === 'pbft' ? 4 : 5);
  const f = faultToleranceOf(protocol, nodes);
  const durationMs = options.durationMs ?? 2000;
  const faultFree = rng.next() < (options.faultFreeShare ?? 0.15);
  const kinds = protocol === 'pbft' ? PBFT_KINDS : EPAXOS_KINDS;
  // The nodes allowed to crash or misbehave in this run: at most f of them.
  const bad = pickDistinct(rng, nodes, 1 + rng.int(Math.max(1, f)));
  const faults: FaultSpec[] = [];
  const faultCount = faultFree ? 0 : 1 + rng.int(options.maxFaultsPerScenario ?? 3);
  for (let k = 0; k < faultCount; k++) {
    const kind = kinds[rng.int(kinds.length)]!;
    faults.push(makeFault(kind, rng, nodes, f, bad, durationMs, protocol));
  }
  const name = `${protocol}-gen-${index}-${faultFree ? 'none' : [...new Set(faults.map((x) => x.kind))].sort().join('.')}`.slice(0, 80);
  const scenario = validateScenario(
    {
      name,
      description: faultFree ? 'generated, fault-free' : `generated: ${faults.map((x) => x.kind).join(', ')}`,
      protocol,
      nodes,
      duration_ms: durationMs,
      quiet_ms: 20_000,
      clients: 2 + rng.int(5),
      workload: { keys: 2 + rng.int(10), read: 0.2 + rng.next() * 0.4, write: 0.2 + rng.next() * 0.4, cas: rng.next() * 0.3, think_ms: 0.5 + rng.next() * 4 },
      faults,
    },
    name,
  );
  const verdict = judgeFaultModel(protocol, nodes, scenario.faults, f);
  const faultyNodes = new Set<NodeId>();
  for (const fault of scenario.faults) {
    if ('nodes' in fault && Array.isArray(fault.nodes)) fault.nodes.forEach((n) => faultyNodes.add(n));
    if (fault.kind === 'partition') fault.groups.slice(1).flat().forEach((n) => faultyNodes.add(n));
  }
  return {
    scenario,
    labels: {
      faultFree,
      kinds: [...new Set(scenario.faults.map((x) => x.kind))].sort(),
      faultyNodes: [...faultyNodes].sort((a, b) => a - b),
      beyondFaultModel: verdict.beyondFaultModel,
    },
  };
}

function makeFault(kind: FaultKind, rng: Rng, nodes: number, f: number, bad: readonly NodeId[], durationMs: number, protocol: Protocol): FaultSpec {
  const at_ms = 50 + rng.int(Math.max(1, Math.floor(durationMs * 0.6)));
  const duration_ms = 50 + rng.int(Math.max(1, Math.floor(durationMs / 2)));
  const someBad = (): NodeId[] => pickSubset(rng, bad);
  const anyNodes = (): NodeId[] => pickDistinct(rng, nodes, 1 + rng.int(Math.max(1, f)));
  const rate = (lo: number, hi: number): number => Math.round((lo + rng.next() * (hi - lo)) * 1000) / 1000;
  switch (kind) {
    case 'crash': {
      const crashed = someBad();
      // PBFT counts an amnesiac replica as faulty like any other, so half of its crashes lose
      // the disk too; EPaxos assumes state survives a crash, so its crashes never do.
      return protocol === 'pbft' && rng.next() < 0.5 ? { kind, at_ms, duration_ms, nodes: crashed, amnesia: true } : { kind, at_ms, duration_ms, nodes: crashed };
    }
    case 'partition': {
      const minority = pickDistinct(rng, nodes, 1 + rng.int(Math.max(1, f)));
      const majority = Array.from({ length: nodes }, (_, i) => i).filter((n) => !minority.includes(n));
      return { kind, at_ms, duration_ms, groups: [majority, minority] };
    }
    case 'delay':
      return rng.next() < 0.5
        ? { kind, at_ms, duration_ms, delay_ms: rate(1, 20), nodes: anyNodes() }
        : { kind, at_ms, duration_ms, delay_ms: rate(1, 20), links: [[rng.int(nodes), rng.int(nodes)]] };
    case 'drop':
      return { kind, at_ms, duration_ms, rate: rate(0.02, 0.3), ...(rng.next() < 0.5 ? { nodes: anyNodes() } : {}) };
    case 'duplicate':
      return { kind, at_ms, duration_ms, rate: rate(0.05, 0.4), ...(rng.next() < 0.5 ? { nodes: anyNodes() } : {}) };
    case 'reorder':
      return { kind, at_ms, duration_ms, rate: rate(0.1, 0.6), delay_ms: rate(0.5, 5), ...(rng.next() < 0.5 ? { nodes: anyNodes() } : {}) };
    case 'clock_skew':
      // Always some drift: an offset alone changes nothing PBFT does (its timers are monotonic).
      return { kind, at_ms, duration_ms, nodes: anyNodes(), skew_ms: Math.round((rng.next() - 0.5) * 1000), drift_ppm: Math.round((rng.next() - 0.5) * 1_000_000) || 1000 };
    case 'equivocation':
    case 'silent':
    case 'state_corruption':
      return { kind, at_ms, duration_ms, nodes: someBad() };
    case 'forged_vote':
      return { kind, at_ms, duration_ms, nodes: someBad(), behaviour: (['impersonate', 'wrong_digest', 'both'] as const)[rng.int(3)]! };
    case 'withheld_vote':
      return { kind, at_ms, duration_ms, nodes: someBad(), rate: rate(0.5, 1) };
    case 'replay':
      return { kind, at_ms, duration_ms, nodes: someBad(), rate: rate(0.05, 0.5) };
  }
}

function pickDistinct(rng: Rng, n: number, count: number): NodeId[] {
  const pool = Array.from({ length: n }, (_, i) => i);
  const out: NodeId[] = [];
  for (let i = 0; i < Math.min(count, n); i++) out.push(pool.splice(rng.int(pool.length), 1)[0]!);
  return out.sort((a, b) => a - b);
}

function pickSubset(rng: Rng, from: readonly NodeId[]): NodeId[] {
  const subset = from.filter(() => rng.next() < 0.5);
  return subset.length > 0 ? subset : [from[rng.int(from.length)]!];
}
