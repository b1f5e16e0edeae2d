/**
 * The chaos engine: turns a scenario's fault schedule into simulator events that change the
 * network and the nodes, and keeps the ground-truth labels (active fault kinds and targeted
 * nodes) that every trace record carries.
 */
import type { Rng } from '../../core/rng.ts';
import type { FaultKind } from '../../core/trace-schema.ts';
import type { NodeId } from '../protocol.ts';
import type { NetworkModel } from '../sim/network.ts';
import type { NodeHost } from '../sim/node-host.ts';
import type { Simulator } from '../sim/simulator.ts';
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
}

export interface FaultLogEntry {
  readonly timeUs: number;
  /** `effect_end`: a fault whose effect outlives it (state corruption) stopped acting. */
  readonly action: 'start' | 'end' | 'effect_end';
  readonly kind: FaultKind;
  readonly nodes: readonly NodeId[];
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
  private kinds: readonly FaultKind[] = [];
  private faultyNodes: readonly NodeId[] = [];
  /** Every start and end, for the run report and tests. */
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

  get activeCount(): number {
    return this.active.size;
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
    const { nodes, undo } = this.apply(spec);
    this.active.set(id, { spec, nodes, undo });
    this.log.push({ timeUs: this.target.sim.nowUs(), action: 'start', kind: spec.kind, nodes });
    this.relabel();
    return id;
  }

  end(id: number): void {
    const fault = this.active.get(id);
    if (fault === undefined) return;
    this.active.delete(id);
    fault.undo();
    this.log.push({ timeUs: this.target.sim.nowUs(), action: 'end', kind: fault.spec.kind, nodes: fault.nodes });
    this.relabel();
  }

  /** A node's state was checked (every transition): a corruption's effect ends once it is right. */
  onStateChecked(node: NodeId, match: boolean): void {
    if (this.corrupted.size === 0 || !match || !this.corrupted.delete(node)) return;
    this.log.push({ timeUs: this.target.sim.nowUs(), action: 'effect_end', kind: 'state_corruption', nodes: [node] });
    this.relabel();
  }

  /** End of the fault period: heal the network, restart crashed nodes, stop misbehaving. */
  endAll(): void {
    for (const id of [...this.active.keys()]) this.end(id);
  }

  private relabel(): void {
    const kinds = new Set<FaultKind>();
    const nodes = new Set<NodeId>();
    for (const fault of this.active.values()) {
      // A corruption is a one-off: its label follows its effect (`corrupted`), not its window.
      if (fault.spec.kind === 'state_corruption') continue;
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

  private apply(spec: FaultSpec): { nodes: readonly NodeId[]; undo: () => void } {
    const { network } = this.target;
    const replicaCount = this.target.hosts.length;
    switch (spec.kind) {
      case 'crash': {
        const hosts = this.hostsOf(spec.nodes).filter((h) => !h.crashed);
        for (const host of hosts) host.crash();
        const amnesia = spec.amnesia === true;
        return { nodes: spec.nodes, undo: () => hosts.forEach((h) => h.restart({ amnesia })) };
      }
      case 'partition': {
        network.setPartition(spec.groups, replicaCount);
        return { nodes: partitionedAway(spec.groups, replicaCount), undo: () => network.heal() };
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
        return { nodes, undo: () => network.removeRule(rule) };
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
        return { nodes: spec.nodes ?? [], undo: () => network.removeRule(rule) };
      }
      case 'clock_skew': {
        const skew = Math.round(spec.skew_ms * 1000);
        const hosts = this.hostsOf(spec.nodes);
        for (const host of hosts) host.skewUs += skew;
        return { nodes: spec.nodes, undo: () => hosts.forEach((h) => (h.skewUs -= skew)) };
      }
      case 'equivocation':
        return this.toggle(spec.nodes, (h, d) => (h.misbehaviour.equivocate += d));
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
        return { nodes: spec.nodes, undo: () => {} };
      }
    }
  }

  private toggle(nodes: readonly NodeId[], set: (host: NodeHost, delta: 1 | -1) => void): { nodes: readonly NodeId[]; undo: () => void } {
    const hosts = this.hostsOf(nodes);
    for (const host of hosts) set(host, 1);
    return { nodes, undo: () => hosts.forEach((h) => set(h, -1)) };
  }
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
