/**
 * Random scenario corpora for training and chaos sweeps: varied, labelled, and within the fault
 * model (at most f distinct crashed-or-misbehaving nodes per run; no Byzantine kinds for EPaxos),
 * so every run must be both safe and live. Some runs are fault-free: the "normal" class.
 *
 * Two generators: `generateScenarios` (short runs of 1–3 overlapping faults, for chaos sweeps and
 * the `--count/--seed` form of `chaos generate`) and `planCorpus` (a corpus specification: long
 * runs of separated episodes with normal traffic around them, for training and evaluation).
 */
import { invariant } from '../../core/errors.ts';
import { createRng, type Rng } from '../../core/rng.ts';
import type { FaultKind, Protocol } from '../../core/trace-schema.ts';
import type { NodeId } from '../protocol.ts';
import { BYZANTINE_KINDS, EPAXOS_BEYOND_KINDS, faultToleranceOf, judgeFaultModel } from './fault-model.ts';
import { familiesFor, nodesOf, seedsOf, type CorpusSpec, type FamilySpec, type FaultTemplate, type LoadLevel, type NoiseSpec, type Range } from './corpus-spec.ts';
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

// ---------------------------------------------------------------------------------------------
// Corpora from a specification (corpus-spec.ts): runs of a given length holding several
// separated fault episodes, with normal traffic before, between and after them; loads and
// background noise drawn per run. A run depends only on the spec, its protocol, its seed and
// whether its position is a fault-free one, so a spec reproduces the same scenarios from its seeds.
// ---------------------------------------------------------------------------------------------

/** Width of the windows the corpus is sized in (the detectors' 100 ms windows). */
export const CORPUS_WINDOW_MS = 100;

export interface EpisodeLabel {
  readonly index: number;
  readonly family: string;
  /** Fault kinds the episode injects (a mix has several). */
  readonly kinds: readonly FaultKind[];
  /** Nodes its faults target (for a partition: the nodes cut off); a `leader` target is not among them. */
  readonly nodes: readonly NodeId[];
  /** A fault targets whoever leads when the episode starts (resolved in the run: see the records' faulty_nodes). */
  readonly leader: boolean;
  /** Run time (ms since the run's start) at which its faults start, and at which the last one ends. */
  readonly start_ms: number;
  readonly end_ms: number;
}

export interface CorpusLoad {
  readonly level: string;
  readonly clients: number;
  readonly think_ms: number;
  readonly keys: number;
  readonly read: number;
  readonly write: number;
  readonly cas: number;
}

export interface CorpusRunLabels {
  readonly corpus: string;
  readonly run_id: string;
  readonly scenario: string;
  readonly file: string;
  readonly protocol: Protocol;
  readonly seed: number;
  /** Position of the seed in the spec's list. */
  readonly index: number;
  readonly nodes: number;
  readonly duration_ms: number;
  readonly fault_free: boolean;
  readonly families: readonly string[];
  readonly kinds: readonly FaultKind[];
  readonly faulty_nodes: readonly NodeId[];
  readonly episodes: readonly EpisodeLabel[];
  readonly load: CorpusLoad;
  readonly noise: Scenario['network'];
  readonly beyond_fault_model: boolean;
  /** Node × 100 ms windows outside every episode and its recovery_ms: the run's share of normal windows, as planned. */
  readonly planned_normal_windows: number;
}

export interface CorpusRun {
  readonly protocol: Protocol;
  readonly seed: number;
  readonly index: number;
  readonly scenario: Scenario;
  readonly labels: CorpusRunLabels;
}

/**
 * Whether the run at a seed position is fault-free. Positions are spread evenly, so any prefix
 * of the seed list (`--limit`) holds the declared share, rounded up, and position 0 is fault-free
 * whenever the share is above 0.
 */
export function isFaultFreePosition(index: number, share: number): boolean {
  const perMillion = Math.round(share * 1_000_000);
  return Math.ceil(((index + 1) * perMillion) / 1_000_000) > Math.ceil((index * perMillion) / 1_000_000);
}

/** Every run of a corpus, seed by seed (each seed once per protocol, in the spec's order). */
export function planCorpus(spec: CorpusSpec): CorpusRun[] {
  const runs: CorpusRun[] = [];
  seedsOf(spec).forEach((seed, index) => {
    for (const protocol of spec.protocols) runs.push(generateCorpusRun(spec, protocol, seed, index));
  });
  return runs;
}

export function generateCorpusRun(spec: CorpusSpec, protocol: Protocol, seed: number, index: number): CorpusRun {
  const root = createRng(seed).fork(`corpus/${protocol}`);
  // Separate streams, so a run's load and noise do not depend on how many faults it drew.
  const loadRng = root.fork('load');
  const noiseRng = root.fork('noise');
  const faultRng = root.fork('faults');
  const nodes = nodesOf(spec, protocol);
  const f = faultToleranceOf(protocol, nodes);
  const faultFree = isFaultFreePosition(index, spec.fault_free_share);
  const load = drawLoad(loadRng, pickWeighted(loadRng, spec.loads));
  const network = drawNoise(noiseRng, spec.noise);
  const placed = faultFree ? [] : drawEpisodes(spec, protocol, faultRng, nodes, f);
  const faults = placed.flatMap((episode) => episode.faults);
  const name = `${spec.name}-${protocol}-${seed}`;
  const scenario = validateScenario(
    {
      name,
      description: faultFree ? `corpus ${spec.name}: fault-free` : `corpus ${spec.name}: ${placed.map((e) => `${e.label.family}@${e.label.start_ms}-${e.label.end_ms}ms`).join(', ')}`,
      protocol,
      nodes,
      duration_ms: spec.duration_ms,
      quiet_ms: spec.quiet_ms,
      clients: load.clients,
      workload: { keys: load.keys, read: load.read, write: load.write, cas: load.cas, think_ms: load.think_ms },
      network,
      faults,
    },
    name,
  );
  const verdict = judgeFaultModel(protocol, nodes, scenario.faults, f);
  invariant(!spec.within_fault_model || !verdict.beyondFaultModel, `corpus ${spec.name} run ${name} left the fault model: ${verdict.reasons.join('; ')}`);
  const episodes = placed.map((e) => e.label);
  assertSeparated(spec, episodes, name);
  return {
    protocol,
    seed,
    index,
    scenario,
    labels: {
      corpus: spec.name,
      run_id: name,
      scenario: name,
      file: `${name}.yaml`,
      protocol,
      seed,
      index,
      nodes,
      duration_ms: spec.duration_ms,
      fault_free: faultFree,
      families: [...new Set(episodes.map((e) => e.family))].sort(),
      kinds: [...new Set(episodes.flatMap((e) => e.kinds))].sort(),
      faulty_nodes: [...new Set(episodes.flatMap((e) => e.nodes))].sort((a, b) => a - b),
      episodes,
      load,
      noise: scenario.network,
      beyond_fault_model: verdict.beyondFaultModel,
      planned_normal_windows: nodes * normalWindowsOf(spec.duration_ms, episodes, spec.episodes.recovery_ms),
    },
  };
}

/** Whole 100 ms windows (per node) outside every episode and the recovery_ms after it. */
export function normalWindowsOf(durationMs: number, episodes: readonly Pick<EpisodeLabel, 'start_ms' | 'end_ms'>[], recoveryMs: number): number {
  let windows = 0;
  let from = 0;
  for (const episode of [...episodes].sort((a, b) => a.start_ms - b.start_ms)) {
    windows += windowsBetween(from, episode.start_ms);
    from = Math.max(from, episode.end_ms + recoveryMs);
  }
  return windows + windowsBetween(from, durationMs);
}

function windowsBetween(fromMs: number, toMs: number): number {
  return Math.max(0, Math.floor(toMs / CORPUS_WINDOW_MS) - Math.ceil(fromMs / CORPUS_WINDOW_MS));
}

export interface CorpusPlanSummary {
  readonly runs: number;
  readonly fault_free_runs: number;
  readonly episodes: number;
  /** Planned normal node × 100 ms windows: fault-free runs, and the normal stretches of faulty ones. */
  readonly normal_windows: number;
  readonly normal_windows_fault_free_runs: number;
  readonly families: Readonly<Record<string, number>>;
}

/** Per protocol: runs, episodes per family and planned normal windows. */
export function summarizePlan(runs: readonly CorpusRun[]): Record<string, CorpusPlanSummary> {
  const out: Record<string, { runs: number; fault_free_runs: number; episodes: number; normal_windows: number; normal_windows_fault_free_runs: number; families: Record<string, number> }> = {};
  for (const { labels } of runs) {
    const entry = (out[labels.protocol] ??= { runs: 0, fault_free_runs: 0, episodes: 0, normal_windows: 0, normal_windows_fault_free_runs: 0, families: {} });
    entry.runs++;
    entry.episodes += labels.episodes.length;
    entry.normal_windows += labels.planned_normal_windows;
    if (labels.fault_free) {
      entry.fault_free_runs++;
      entry.normal_windows_fault_free_runs += labels.planned_normal_windows;
    }
    for (const episode of labels.episodes) entry.families[episode.family] = (entry.families[episode.family] ?? 0) + 1;
  }
  return out;
}

interface PlacedEpisode {
  readonly label: EpisodeLabel;
  readonly faults: FaultSpec[];
}

interface DrawnEpisode {
  readonly family: FamilySpec;
  readonly templates: readonly { template: FaultTemplate; durationMs: number }[];
  readonly spanMs: number;
}

/**
 * Draws the episodes of a faulty run and places them: lead, episodes separated by at least
 * gap_ms_min, tail; the slack is spread at random over the lead, the gaps and the tail. Episodes
 * that do not fit are dropped from the end (at least one stays, shortened to fit if it must).
 */
function drawEpisodes(spec: CorpusSpec, protocol: Protocol, rng: Rng, nodes: number, f: number): PlacedEpisode[] {
  const e = spec.episodes;
  const families = familiesFor(spec, protocol);
  invariant(families.length > 0, `corpus ${spec.name}: no family for ${protocol}`);
  // The nodes allowed to crash or misbehave in this run: at most f of them, the same for every episode.
  const faulty = pickDistinct(rng, nodes, 1 + rng.int(Math.max(1, f)));
  const count = drawInt(rng, e.count);
  const drawn: DrawnEpisode[] = [];
  // Counted against f: the faulty set once any family uses it, plus one per `leader` fault (its
  // node is known only when it starts, so it may be another one). A family that would exceed f
  // is not drawn; if none fits, the run holds fewer episodes.
  let usesFaulty = false;
  let leaders = 0;
  for (let i = 0; i < count; i++) {
    const fitting = spec.within_fault_model ? families.filter((family) => countedWith(family, usesFaulty, leaders, faulty.length) <= f) : families;
    if (fitting.length === 0) break;
    const family = pickWeighted(rng, fitting);
    usesFaulty ||= family.faults.some(targetsFaultySet);
    leaders += family.faults.filter(targetsLeader).length;
    const templates = family.faults.map((template) => ({ template, durationMs: drawInt(rng, template.duration_ms ?? e.duration_ms) }));
    drawn.push({ family, templates, spanMs: Math.max(...templates.map((t) => t.durationMs)) });
  }
  // A family alone always fits (the faulty set has at most f nodes; a leader is one).
  invariant(drawn.length > 0, `corpus ${spec.name}: no ${protocol} family fits within f = ${f}`);
  const room = spec.duration_ms - e.lead_ms_min - e.tail_ms_min;
  const needed = (list: readonly DrawnEpisode[]) => list.reduce((sum, d) => sum + d.spanMs, 0) + (list.length - 1) * e.gap_ms_min;
  while (drawn.length > 1 && needed(drawn) > room) drawn.pop();
  if (needed(drawn) > room) {
    const only = drawn[0]!;
    drawn[0] = { ...only, templates: only.templates.map((t) => ({ ...t, durationMs: Math.min(t.durationMs, room) })), spanMs: Math.min(only.spanMs, room) };
  }
  // Slack over lead, gaps and tail, in whole milliseconds.
  const slack = room - needed(drawn);
  const weights = Array.from({ length: drawn.length + 1 }, () => rng.next());
  const total = weights.reduce((a, b) => a + b, 0) || 1;
  const extra = weights.map((w) => Math.floor((slack * w) / total));
  let at = e.lead_ms_min + extra[0]!;
  return drawn.map((episode, index) => {
    const start = at;
    const faults = episode.templates.map(({ template, durationMs }) => instantiate(template, { rng, protocol, nodes, f, faulty, atMs: start, durationMs }));
    at = start + episode.spanMs + e.gap_ms_min + (extra[index + 1] ?? 0);
    return {
      faults,
      label: {
        index,
        family: episode.family.name,
        kinds: [...new Set(faults.map((x) => x.kind))].sort(),
        nodes: [...new Set(faults.flatMap(targetsOf))].sort((a, b) => a - b),
        leader: faults.some((x) => 'nodes' in x && x.nodes === 'leader'),
        start_ms: start,
        end_ms: start + episode.spanMs,
      },
    };
  });
}

function targetsLeader(template: FaultTemplate): boolean {
  return 'target' in template && template.target === 'leader';
}

function targetsFaultySet(template: FaultTemplate): boolean {
  return (template.kind === 'crash' || BYZANTINE_KINDS.has(template.kind)) && !targetsLeader(template);
}

/** Nodes counted against f once the family is added to a run. */
function countedWith(family: FamilySpec, usesFaulty: boolean, leaders: number, faultySize: number): number {
  const faulty = usesFaulty || family.faults.some(targetsFaultySet);
  return (faulty ? faultySize : 0) + leaders + family.faults.filter(targetsLeader).length;
}

function assertSeparated(spec: CorpusSpec, episodes: readonly EpisodeLabel[], run: string): void {
  const e = spec.episodes;
  episodes.forEach((episode, i) => {
    const previousEnd = i === 0 ? undefined : episodes[i - 1]!.end_ms;
    invariant(previousEnd === undefined ? episode.start_ms >= e.lead_ms_min : episode.start_ms - previousEnd >= e.gap_ms_min, `corpus ${spec.name} run ${run}: episode ${i} is not separated from what precedes it`);
  });
  const last = episodes.at(-1);
  invariant(last === undefined || spec.duration_ms - last.end_ms >= e.tail_ms_min, `corpus ${spec.name} run ${run}: no tail of normal traffic after the last episode`);
}

interface InstantiateContext {
  readonly rng: Rng;
  readonly protocol: Protocol;
  readonly nodes: number;
  readonly f: number;
  readonly faulty: readonly NodeId[];
  readonly atMs: number;
  readonly durationMs: number;
}

/** One fault of a family, its parameters drawn from the template's ranges. */
function instantiate(template: FaultTemplate, ctx: InstantiateContext): FaultSpec {
  const { rng, nodes, f, faulty } = ctx;
  const timing = { at_ms: ctx.atMs, duration_ms: ctx.durationMs };
  const count = (fallback: Range) => drawInt(rng, template.nodes ?? fallback);
  const fromFaulty = (): NodeId[] => pickFrom(rng, faulty, count({ min: 1, max: 1 }));
  const anyNodes = (): NodeId[] => pickDistinct(rng, nodes, count({ min: 1, max: 1 }));
  // Network kinds: on some nodes' messages, on every message, or (delay) on one link.
  const scope = (fallback: 'node' | 'all'): { nodes?: NodeId[] } => ((('target' in template ? template.target : undefined) ?? fallback) === 'all' ? {} : { nodes: anyNodes() });
  switch (template.kind) {
    case 'crash':
      return { kind: 'crash', ...timing, nodes: fromFaulty(), ...(template.amnesia === true ? { amnesia: true } : {}) };
    case 'partition': {
      const minority = pickDistinct(rng, nodes, Math.min(Math.max(1, f), count({ min: 1, max: Math.max(1, f) })));
      const majority = Array.from({ length: nodes }, (_, i) => i).filter((n) => !minority.includes(n));
      return { kind: 'partition', ...timing, groups: [majority, minority] };
    }
    case 'delay': {
      const delay_ms = Math.max(0.001, round(drawNumber(rng, template.delay_ms), 3));
      if (template.target === 'link') {
        const from = rng.int(nodes);
        const to = (from + 1 + rng.int(nodes - 1)) % nodes;
        return { kind: 'delay', ...timing, delay_ms, links: [[from, to]] };
      }
      return { kind: 'delay', ...timing, delay_ms, ...scope('node') };
    }
    case 'drop':
    case 'duplicate':
      return { kind: template.kind, ...timing, rate: round(drawNumber(rng, template.rate), 3), ...scope('node') };
    case 'reorder':
      return {
        kind: 'reorder',
        ...timing,
        rate: round(drawNumber(rng, template.rate), 3),
        ...(template.delay_ms !== undefined ? { delay_ms: Math.max(0.001, round(drawNumber(rng, template.delay_ms), 3)) } : {}),
        ...scope('node'),
      };
    case 'clock_skew': {
      const sign = () => (rng.next() < 0.5 ? -1 : 1);
      const skew = Math.round(drawNumber(rng, template.skew_ms)) * sign();
      const drift = Math.round(drawNumber(rng, template.drift_ppm)) * sign();
      return { kind: 'clock_skew', ...timing, nodes: anyNodes(), skew_ms: skew === 0 ? 0 : skew, drift_ppm: drift === 0 ? 0 : drift };
    }
    case 'equivocation':
      return { kind: 'equivocation', ...timing, nodes: template.target === 'leader' ? 'leader' : fromFaulty() };
    case 'silent':
    case 'state_corruption':
      return { kind: template.kind, ...timing, nodes: fromFaulty() };
    case 'forged_vote': {
      const behaviours = ['impersonate', 'wrong_digest', 'both'] as const;
      return { kind: 'forged_vote', ...timing, nodes: fromFaulty(), behaviour: template.behaviour === 'random' ? behaviours[rng.int(3)]! : template.behaviour };
    }
    case 'withheld_vote':
    case 'replay':
      return { kind: template.kind, ...timing, nodes: fromFaulty(), rate: round(drawNumber(rng, template.rate), 3) };
  }
}

/** The nodes a fault acts on, as the episode labels name them (a partition: the side cut off). */
function targetsOf(fault: FaultSpec): NodeId[] {
  if (fault.kind === 'partition') return fault.groups.slice(1).flat();
  if (fault.kind === 'delay' && fault.links !== undefined) return fault.links.map(([from]) => from);
  // `leader` is known only when the fault starts: the records' faulty_nodes say who it was.
  return 'nodes' in fault && Array.isArray(fault.nodes) ? [...fault.nodes] : [];
}

function drawLoad(rng: Rng, level: LoadLevel): CorpusLoad {
  const read = round(drawNumber(rng, level.read_share), 3);
  const cas = round(Math.min(drawNumber(rng, level.cas_share), 1 - read), 3);
  return {
    level: level.name,
    clients: drawInt(rng, level.clients),
    think_ms: round(drawNumber(rng, level.think_ms), 3),
    keys: drawInt(rng, level.keys),
    read,
    write: round(Math.max(0, 1 - read - cas), 3),
    cas,
  };
}

function drawNoise(rng: Rng, noise: NoiseSpec): Scenario['network'] {
  return {
    latency_us: Math.max(1, Math.round(drawNumber(rng, noise.latency_us))),
    jitter: round(drawNumber(rng, noise.jitter), 3),
    tail_rate: round(drawNumber(rng, noise.tail_rate), 4),
    tail_us: Math.round(drawNumber(rng, noise.tail_us)),
    drop: round(drawNumber(rng, noise.drop), 5),
    duplicate: round(drawNumber(rng, noise.duplicate), 5),
    reorder: round(drawNumber(rng, noise.reorder), 5),
    reorder_delay_us: 2000,
  };
}

function pickWeighted<T extends { weight: number }>(rng: Rng, items: readonly T[]): T {
  invariant(items.length > 0, 'pickWeighted needs at least one item');
  const total = items.reduce((sum, item) => sum + item.weight, 0);
  let point = rng.next() * total;
  for (const item of items) {
    point -= item.weight;
    if (point < 0) return item;
  }
  return items[items.length - 1]!;
}

/** Uniform integer in [min, max]. */
function drawInt(rng: Rng, r: Range): number {
  return Math.ceil(r.min) + rng.int(Math.floor(r.max) - Math.ceil(r.min) + 1);
}

/** Uniform in [min, max). */
function drawNumber(rng: Rng, r: Range): number {
  return r.min + rng.next() * (r.max - r.min);
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

function pickFrom(rng: Rng, from: readonly NodeId[], count: number): NodeId[] {
  const pool = [...from];
  const out: NodeId[] = [];
  for (let i = 0; i < Math.min(Math.max(1, count), pool.length); i++) out.push(pool.splice(rng.int(pool.length), 1)[0]!);
  return out.sort((a, b) => a - b);
}
