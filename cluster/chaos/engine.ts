/**
 * The chaos engine: turns a scenario's fault schedule into simulator events that change the
 * network and the nodes, and keeps the ground-truth labels (active fault kinds and targeted
 * nodes) that every trace record carries. A label means an effect: a fault that cannot act is
 * logged as `no_effect` and not labelled; an equivocation is labelled on the node that actually
 * equivocates, while it leads; after the last fault stops acting the cluster is `recovering`
 * until the protocol is back to normal (chaos/recovery.ts).
 */
import type { Rng } from '../../core/rng.ts';
import type { FaultKind } from '../../core/trace-schema.ts';
import type { NodeId, ReplicaProgress } from '../protocol.ts';
import type { NetworkModel } from '../sim/network.ts';
import type { NodeHost } from '../sim/node-host.ts';
import type { Simulator } from '../sim/simulator.ts';
import { isSettled, recoveryMarks, type RecoveryMarks } from './recovery.ts';
import type { FaultSpec } from './scenario.ts';

export interface ChaosTarget {
  readonly sim: Simulator;
  readonly network: NetworkModel;
  readonly hosts: readonly NodeHost[];
}

interface ActiveFault {
  readonly spec: FaultSpec;
  readonly nodes: readonly NodeId[];
  readonly undo: () => void;
  /** Cannot act at all (logged `no_effect` at its start): never labelled, disturbs nothing. */
  readonly noEffect: boolean;
  /** Equivocation only: per target, its `misbehaviour.equivocated` when last looked at. */
  readonly equivocatedSeen?: Map<NodeId, number>;
  /** Equivocation only: the targets that equivocated and still lead (the labelled ones). */
  readonly equivocating?: Set<NodeId>;
  /** Equivocation only: the targets that equivocated at some point. */
  readonly everEquivocated?: Set<NodeId>;
}

export interface FaultEvent {
  readonly timeUs: number;
  /**
   * `start` / `end`: the fault's window. `effect_start` / `effect_end`: a fault whose effect is
   * not its window (an equivocation acts while its node leads and rewrites proposals; a state
   * corruption until the state is right again). `no_effect`: the fault could not act (`reason`).
   */
  readonly action: 'start' | 'end' | 'effect_start' | 'effect_end' | 'no_effect';
  readonly kind: FaultKind;
  readonly nodes: readonly NodeId[];
  readonly reason?: string;
}

export interface RecoveringEvent {
  readonly timeUs: number;
  readonly action: 'recovering_start' | 'recovering_end';
  /** A period of the whole cluster: no fault kind, no nodes (so `entry.nodes` reads on any entry). */
  readonly kind?: undefined;
  readonly nodes: readonly NodeId[];
  /** recovering_end: `settled` (back to normal), `fault_started` (a new fault cut it short) or
   * `run_end` (never settled before the run ended: the bound). */
  readonly reason?: 'settled' | 'fault_started' | 'run_end';
}

export type FaultLogEntry = FaultEvent | RecoveringEvent;

export function isFaultEvent(entry: FaultLogEntry): entry is FaultEvent {
  return entry.kind !== undefined;
}

export class ChaosEngine {
  private readonly active = new Map<number, ActiveFault>();
  private nextId = 1;
  /**
   * Nodes whose state a state_corruption fault changed and that have not been right since: the
   * corruption acts until the node's state matches its shadow again (a later write over the bad
   * key, a state transfer), however long the fault's own duration was, and is labelled so.
   */
  private readonly corrupted = new Set<NodeId>();
  /** Active equivocation faults (the per-transition work is skipped while there are none). */
  private equivocations = 0;
  private kinds: readonly FaultKind[] = [];
  private faultyNodes: readonly NodeId[] = [];
  /** A fault acted since the cluster was last normal: its healing starts a recovering period. */
  private disturbed = false;
  private recoveringMarks: RecoveryMarks | null = null;
  /** The node ids each started fault resolved to (`leader` → the leader then). */
  private readonly resolved = new Map<FaultSpec, readonly NodeId[]>();
  /** Told which nodes a fault aimed at `leader` turned Byzantine, when it starts (the run's safety checks stop trusting them). */
  onLeaderResolved: ((nodes: readonly NodeId[]) => void) | null = null;
  /** Every start and end, effect, no-effect and recovering period, in time order. */
  readonly log: FaultLogEntry[] = [];

  constructor(
    private readonly target: ChaosTarget,
    private readonly rng: Rng,
  ) {}

  activeFaults(): readonly FaultKind[] {
    return this.kinds;
  }

  activeFaultyNodes(): readonly NodeId[] {
    return this.faultyNodes;
  }

  /** After the faults stopped acting and until the protocol is back to normal. */
  recovering(): boolean {
    return this.recoveringMarks !== null;
  }

  get activeCount(): number {
    return this.active.size;
  }

  /** The scenario's faults with `leader` replaced by the node it resolved to (for the fault model). */
  resolvedFaults(faults: readonly FaultSpec[]): FaultSpec[] {
    return faults.map((spec) => {
      const nodes = this.resolved.get(spec);
      return nodes !== undefined && spec.kind === 'equivocation' && spec.nodes === 'leader' ? { ...spec, nodes: [...nodes] } : spec;
    });
  }

  /** Schedules every fault; faults still active at `faultPeriodEndUs` are ended by `endAll`. */
  schedule(faults: readonly FaultSpec[], startUs: number, faultPeriodEndUs: number): void {
    for (const spec of faults) {
      const at = startUs + spec.at_ms * 1000;
      this.target.sim.scheduleAt(at, 'fault', () => {
        const id = this.start(spec);
        if (spec.duration_ms !== undefined) {
          const end = at + spec.duration_ms * 1000;
          if (end < faultPeriodEndUs) this.target.sim.scheduleAt(end, 'fault', () => this.end(id));
        }
      });
    }
  }

  /** Applies one fault now; returns its id for `end`. */
  start(spec: FaultSpec): number {
    const id = this.nextId++;
    if (this.recoveringMarks !== null) this.endRecovering('fault_started');
    const applied = this.apply(spec);
    const fault: ActiveFault = { spec, ...applied };
    this.active.set(id, fault);
    this.resolved.set(spec, fault.nodes);
    if (spec.kind === 'equivocation' && spec.nodes === 'leader') this.onLeaderResolved?.(fault.nodes);
    this.push({ action: 'start', kind: spec.kind, nodes: fault.nodes });
    if (applied.noEffectReason !== undefined) this.push({ action: 'no_effect', kind: spec.kind, nodes: fault.nodes, reason: applied.noEffectReason });
    if (spec.kind === 'equivocation') this.equivocations++;
    // An equivocation disturbs the cluster once it acts (its first rewritten proposal).
    if (!fault.noEffect && spec.kind !== 'equivocation') this.disturbed = true;
    this.relabel();
    return id;
  }

  end(id: number): void {
    const fault = this.active.get(id);
    if (fault === undefined) return;
    this.active.delete(id);
    fault.undo();
    const kind = fault.spec.kind;
    if (kind === 'equivocation') {
      this.equivocations--;
      this.pollEquivocation(fault);
      if (fault.equivocating !== undefined && fault.equivocating.size > 0) {
        this.push({ action: 'effect_end', kind, nodes: sorted(fault.equivocating), reason: 'fault ended' });
      }
      const never = fault.nodes.filter((node) => !fault.everEquivocated?.has(node));
      if (never.length > 0) {
        this.push({ action: 'no_effect', kind, nodes: never, reason: 'sent no proposal while the fault was active (only a leader proposes: a PBFT primary, an EPaxos command leader)' });
      }
    }
    this.push({ action: 'end', kind, nodes: fault.nodes });
    this.relabel();
    this.maybeStartRecovering();
  }

  /**
   * After each transition's state check, before its labels are read: a corruption's effect ends
   * once the node's state is right; an equivocation's starts with the node's first rewritten
   * proposal and ends when it stops leading; a recovering period ends once the protocol settled.
   */
  onStateChecked(node: NodeId, match: boolean): void {
    let changed = false;
    if (this.corrupted.size > 0 && match && this.corrupted.delete(node)) {
      this.push({ action: 'effect_end', kind: 'state_corruption', nodes: [node] });
      changed = true;
    }
    if (this.equivocations > 0) {
      for (const fault of this.active.values()) {
        if (fault.equivocatedSeen?.has(node) === true && this.pollEquivocationOf(fault, node)) changed = true;
      }
    }
    if (changed) {
      this.relabel();
      this.maybeStartRecovering();
    }
    if (this.recoveringMarks !== null && isSettled(this.reports(), this.recoveringMarks)) this.endRecovering('settled');
  }

  /** End of the fault period: heal the network, restart crashed nodes, stop misbehaving. */
  endAll(): void {
    for (const id of [...this.active.keys()]) this.end(id);
  }

  /** The run is over: a recovering period still open ends here, logged as never settled. */
  finish(): void {
    if (this.recoveringMarks !== null) this.endRecovering('run_end');
  }

  private push(entry: Omit<FaultEvent, 'timeUs'> | Omit<RecoveringEvent, 'timeUs'>): void {
    this.log.push({ timeUs: this.target.sim.nowUs(), ...entry } as FaultLogEntry);
  }

  /** Faults still acting: any active one but those that cannot act, and one-off corruptions,
   * which act through `corrupted` instead of their window. */
  private acting(): boolean {
    if (this.corrupted.size > 0) return true;
    for (const fault of this.active.values()) if (!fault.noEffect && fault.spec.kind !== 'state_corruption') return true;
    return false;
  }

  private maybeStartRecovering(): void {
    if (this.recoveringMarks !== null || !this.disturbed || this.acting()) return;
    this.disturbed = false;
    const hosts = this.target.hosts;
    this.recoveringMarks = recoveryMarks(this.reports(), hosts.map((h) => h.nowUs()));
    this.push({ action: 'recovering_start', nodes: [] });
    if (isSettled(this.reports(), this.recoveringMarks)) this.endRecovering('settled');
  }

  private endRecovering(reason: 'settled' | 'fault_started' | 'run_end'): void {
    this.recoveringMarks = null;
    this.push({ action: 'recovering_end', nodes: [], reason });
  }

  private reports(): (ReplicaProgress | null)[] {
    return this.target.hosts.map((host) => (host.crashed ? null : host.replica.progressReport()));
  }

  /** Whether the node acts as leader now (EPaxos: every replica leads its own instances). */
  private leads(node: NodeId): boolean {
    const host = this.target.hosts[node];
    if (host === undefined || host.crashed) return false;
    const report = host.replica.progressReport();
    return report.leader === null || (report.leader === node && !report.viewChanging);
  }

  private pollEquivocation(fault: ActiveFault): void {
    for (const node of fault.nodes) this.pollEquivocationOf(fault, node);
  }

  /** Updates one target of an equivocation fault; true when its label changed. */
  private pollEquivocationOf(fault: ActiveFault, node: NodeId): boolean {
    const seen = fault.equivocatedSeen;
    const equivocating = fault.equivocating;
    const host = this.target.hosts[node];
    if (seen === undefined || equivocating === undefined || host === undefined) return false;
    const count = host.misbehaviour.equivocated;
    const rewrote = count > (seen.get(node) ?? 0);
    seen.set(node, count);
    if (rewrote && !equivocating.has(node)) {
      equivocating.add(node);
      fault.everEquivocated?.add(node);
      this.disturbed = true;
      this.push({ action: 'effect_start', kind: 'equivocation', nodes: [node] });
      return true;
    }
    if (!rewrote && equivocating.has(node) && !this.leads(node)) {
      equivocating.delete(node);
      this.push({ action: 'effect_end', kind: 'equivocation', nodes: [node], reason: 'no longer leads' });
      return true;
    }
    return false;
  }

  private relabel(): void {
    const kinds = new Set<FaultKind>();
    const nodes = new Set<NodeId>();
    for (const fault of this.active.values()) {
      // A corruption is a one-off: its label follows its effect (`corrupted`), not its window.
      if (fault.spec.kind === 'state_corruption' || fault.noEffect) continue;
      if (fault.equivocating !== undefined) {
        if (fault.equivocating.size === 0) continue;
        kinds.add(fault.spec.kind);
        for (const node of fault.equivocating) nodes.add(node);
        continue;
      }
      kinds.add(fault.spec.kind);
      for (const node of fault.nodes) nodes.add(node);
    }
    if (this.corrupted.size > 0) kinds.add('state_corruption');
    for (const node of this.corrupted) nodes.add(node);
    this.kinds = Object.freeze([...kinds].sort());
    this.faultyNodes = Object.freeze([...nodes].sort((a, b) => a - b));
  }

  private hostsOf(nodes: readonly NodeId[]): NodeHost[] {
    return nodes.flatMap((node) => {
      const host = this.target.hosts[node];
      return host === undefined ? [] : [host];
    });
  }

  /** The node most replicas that are up believe leads (ties: the lowest id); null if none does. */
  private currentLeader(): NodeId | null {
    const votes = new Map<NodeId, number>();
    for (const report of this.reports()) {
      if (report?.leader !== null && report?.leader !== undefined) votes.set(report.leader, (votes.get(report.leader) ?? 0) + 1);
    }
    let best: NodeId | null = null;
    for (const [node, count] of votes) if (best === null || count > (votes.get(best) ?? 0) || (count === votes.get(best) && node < best)) best = node;
    return best;
  }

  private apply(spec: FaultSpec): { nodes: readonly NodeId[]; undo: () => void; noEffect: boolean; noEffectReason?: string; equivocatedSeen?: Map<NodeId, number>; equivocating?: Set<NodeId>; everEquivocated?: Set<NodeId> } {
    const { network } = this.target;
    const replicaCount = this.target.hosts.length;
    const acts = (nodes: readonly NodeId[], undo: () => void) => ({ nodes, undo, noEffect: false });
    switch (spec.kind) {
      case 'crash': {
        const hosts = this.hostsOf(spec.nodes).filter((h) => !h.crashed);
        for (const host of hosts) host.crash();
        const amnesia = spec.amnesia === true;
        return acts(spec.nodes, () => hosts.forEach((h) => h.restart({ amnesia })));
      }
      case 'partition': {
        network.setPartition(spec.groups, replicaCount);
        return acts(partitionedAway(spec.groups, replicaCount), () => network.heal());
      }
      case 'delay': {
        const rule = network.addRule({
          kind: 'delay',
          nodes: spec.nodes === undefined ? null : new Set(spec.nodes),
          ...(spec.links === undefined ? {} : { links: spec.links }),
          rate: 1,
          delayUs: Math.round(spec.delay_ms * 1000),
        });
        const nodes = spec.links !== undefined ? uniqueSorted(spec.links.map(([from]) => from)) : (spec.nodes ?? []);
        return acts(nodes, () => network.removeRule(rule));
      }
      case 'drop':
      case 'duplicate':
      case 'reorder': {
        const rule = network.addRule({
          kind: spec.kind,
          nodes: spec.nodes === undefined ? null : new Set(spec.nodes),
          rate: spec.rate,
          delayUs: spec.kind === 'reorder' && spec.delay_ms !== undefined ? Math.round(spec.delay_ms * 1000) : network.config.reorderDelayUs,
        });
        return acts(spec.nodes ?? [], () => network.removeRule(rule));
      }
      case 'clock_skew': {
        const stepUs = Math.round(spec.skew_ms * 1000);
        const driftPpm = spec.drift_ppm;
        const hosts = this.hostsOf(spec.nodes);
        for (const host of hosts) {
          if (stepUs !== 0) host.stepClock(stepUs);
          if (driftPpm !== 0) host.addClockDrift(driftPpm, false);
        }
        const undo = () =>
          hosts.forEach((h) => {
            if (stepUs !== 0) h.stepClock(-stepUs);
            if (driftPpm !== 0) h.addClockDrift(-driftPpm, true);
          });
        // Timers are monotonic: a step alone reaches the protocol only through its wall-clock
        // reads. Where it makes no decision from them (PBFT), the step changes nothing it does.
        const readsWallClock = this.target.hosts[0]?.byzantineHooks.readsWallClock ?? true;
        if (driftPpm === 0 && !readsWallClock) {
          return { nodes: spec.nodes, undo, noEffect: true, noEffectReason: 'an offset without drift: this protocol\'s timers are monotonic and it makes no decision from the wall clock, so only node_clock_us (and latencies measured across the step) move' };
        }
        return acts(spec.nodes, undo);
      }
      case 'equivocation': {
        let nodes: readonly NodeId[];
        let reason: string | undefined;
        if (spec.nodes === 'leader') {
          const leader = this.currentLeader();
          nodes = leader === null ? [] : [leader];
          if (leader === null) reason = 'no single leader to target (every replica leads its own instances, or none is up)';
        } else {
          nodes = spec.nodes;
        }
        const hosts = this.hostsOf(nodes);
        for (const host of hosts) host.misbehaviour.equivocate++;
        const seen = new Map(hosts.map((h) => [h.id, h.misbehaviour.equivocated] as const));
        const undo = () => hosts.forEach((h) => h.misbehaviour.equivocate--);
        return { nodes, undo, noEffect: nodes.length === 0, ...(reason === undefined ? {} : { noEffectReason: reason }), equivocatedSeen: seen, equivocating: new Set(), everEquivocated: new Set() };
      }
      case 'forged_vote': {
        const impersonate = spec.behaviour !== 'wrong_digest' ? 1 : 0;
        const wrongDigest = spec.behaviour !== 'impersonate' ? 1 : 0;
        return this.toggle(spec.nodes, (h, d) => {
          h.misbehaviour.impersonate += d * impersonate;
          h.misbehaviour.wrongDigest += d * wrongDigest;
        });
      }
      case 'silent':
        return this.toggle(spec.nodes, (h, d) => (h.misbehaviour.silent += d));
      case 'withheld_vote':
        return this.toggle(spec.nodes, (h, d) => (d > 0 ? h.misbehaviour.startWithholding(spec.rate) : h.misbehaviour.stopWithholding(spec.rate)));
      case 'replay':
        return this.toggle(spec.nodes, (h, d) => (d > 0 ? h.misbehaviour.startReplaying(spec.rate) : h.misbehaviour.stopReplaying(spec.rate)));
      case 'state_corruption': {
        // A one-off change to the runtime state: it acts (and is labelled) until the state is
        // right again, not for the fault's duration (see `corrupted`).
        for (const host of this.hostsOf(spec.nodes)) {
          host.stateMachine.corrupt(this.rng);
          this.corrupted.add(host.id);
        }
        return acts(spec.nodes, () => {});
      }
    }
  }

  private toggle(nodes: readonly NodeId[], set: (host: NodeHost, delta: 1 | -1) => void): { nodes: readonly NodeId[]; undo: () => void; noEffect: boolean } {
    const hosts = this.hostsOf(nodes);
    for (const host of hosts) set(host, 1);
    return { nodes, undo: () => hosts.forEach((h) => set(h, -1)), noEffect: false };
  }
}

function sorted(nodes: Iterable<NodeId>): NodeId[] {
  return [...nodes].sort((a, b) => a - b);
}

/** Nodes outside the largest group (ties: the first listed) are the ones partitioned away. */
function partitionedAway(groups: ReadonlyArray<readonly NodeId[]>, replicaCount: number): NodeId[] {
  const listed = new Set(groups.flat());
  const rest: NodeId[] = [];
  for (let node = 0; node < replicaCount; node++) if (!listed.has(node)) rest.push(node);
  const all = rest.length > 0 ? [...groups, rest] : [...groups];
  let largest = 0;
  all.forEach((group, i) => {
    if (group.length > (all[largest]?.length ?? 0)) largest = i;
  });
  return uniqueSorted(all.filter((_, i) => i !== largest).flat());
}

function uniqueSorted(nodes: readonly NodeId[]): NodeId[] {
  return [...new Set(nodes)].sort((a, b) => a - b);
}
