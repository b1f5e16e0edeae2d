/**
 * Seeded network model. For every message it decides whether it arrives and after how long:
 * a lognormal-ish base latency with a heavy tail, then the chaos engine's run-time knobs (loss,
 * duplication, reordering by extra random delay, slow links, partitions). It never schedules
 * anything itself: the harness turns the returned delays into delivery events.
 */
import type { Rng } from '../../core/rng.ts';
import type { NodeId } from '../protocol.ts';

export interface NetworkConfig {
  /** Median one-way latency, microseconds. */
  readonly latencyUs: number;
  /** Sigma of the lognormal around the median (0 = constant latency). */
  readonly jitter: number;
  /** Probability that a message also takes a tail delay, uniform in [0, tailUs). */
  readonly tailRate: number;
  readonly tailUs: number;
  /** Background rates applied to every message (faults add rules on top). */
  readonly drop: number;
  readonly duplicate: number;
  readonly reorder: number;
  /** Extra delay bound for a reordered message, microseconds. */
  readonly reorderDelayUs: number;
}

export const DEFAULT_NETWORK: NetworkConfig = {
  latencyUs: 300,
  jitter: 0.35,
  tailRate: 0.01,
  tailUs: 4_000,
  drop: 0,
  duplicate: 0,
  reorder: 0,
  reorderDelayUs: 2_000,
};

export type LinkRuleKind = 'drop' | 'duplicate' | 'reorder' | 'delay';

/** A run-time change to the links touching `nodes` (null: every link). */
export interface LinkRule {
  readonly kind: LinkRuleKind;
  readonly nodes: ReadonlySet<NodeId> | null;
  /** Directed links only (from, to); when set, `nodes` is ignored. */
  readonly links?: ReadonlyArray<readonly [NodeId, NodeId]>;
  /** Probability per message for drop/duplicate/reorder; ignored for delay. */
  readonly rate: number;
  /** Fixed extra delay (delay) or bound of the random extra delay (reorder), microseconds. */
  readonly delayUs: number;
}

export interface NetworkStats {
  sent: number;
  delivered: number;
  dropped: number;
  partitioned: number;
  duplicated: number;
  reordered: number;
  delayed: number;
}

/** An endpoint is a replica (its id) or a client (outside the partitionable replica set). */
export type Endpoint = { readonly replica: NodeId } | { readonly client: number };

const NONE: readonly number[] = [];

export class NetworkModel {
  readonly stats: NetworkStats = { sent: 0, delivered: 0, dropped: 0, partitioned: 0, duplicated: 0, reordered: 0, delayed: 0 };
  private readonly rules = new Map<number, LinkRule>();
  private nextRuleId = 1;
  /** Partition group per replica; null when the network is whole. */
  private groupOf: Int32Array | null = null;
  private readonly muLog: number;
  /** Delays of the copies the last routeIds() call decided on (valid up to its return value). */
  firstDelayUs = 0;
  secondDelayUs = 0;

  constructor(
    readonly config: NetworkConfig,
    private readonly rng: Rng,
  ) {
    this.muLog = Math.log(Math.max(1, config.latencyUs));
  }

  /** Splits the replicas into groups; replicas in no group form one more group together. */
  setPartition(groups: ReadonlyArray<readonly NodeId[]>, replicaCount: number): void {
    const groupOf = new Int32Array(replicaCount).fill(groups.length);
    groups.forEach((group, index) => {
      for (const node of group) if (node < replicaCount) groupOf[node] = index;
    });
    this.groupOf = groupOf;
  }

  heal(): void {
    this.groupOf = null;
  }

  get partitioned(): boolean {
    return this.groupOf !== null;
  }

  canReach(from: NodeId, to: NodeId): boolean {
    const groupOf = this.groupOf;
    return groupOf === null || groupOf[from] === groupOf[to];
  }

  addRule(rule: LinkRule): number {
    const id = this.nextRuleId++;
    this.rules.set(id, rule);
    return id;
  }

  removeRule(id: number): void {
    this.rules.delete(id);
  }

  get activeRules(): readonly LinkRule[] {
    return [...this.rules.values()];
  }

  /** Base one-way latency: lognormal around the median plus an occasional tail. */
  private baseLatency(): number {
    const { jitter, tailRate, tailUs } = this.config;
    let latency = this.config.latencyUs;
    if (jitter > 0) {
      // Box–Muller from two seeded uniforms.
      const u1 = 1 - this.rng.next();
      const u2 = this.rng.next();
      const z = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
      latency = Math.exp(this.muLog + jitter * z);
    }
    if (tailRate > 0 && this.rng.next() < tailRate) latency += this.rng.next() * tailUs;
    return Math.max(1, Math.round(latency));
  }

  /**
   * Decides the fate of one message: the delays (µs) after which copies arrive. Empty: lost.
   * Two entries: duplicated. Partitions apply between replicas only; clients reach every replica.
   */
  route(from: Endpoint, to: Endpoint): readonly number[] {
    const copies = this.routeIds('replica' in from ? from.replica : -1, 'replica' in to ? to.replica : -1);
    if (copies === 0) return NONE;
    return copies === 1 ? [this.firstDelayUs] : [this.firstDelayUs, this.secondDelayUs];
  }

  /**
   * route() without allocating, for the per-message path: endpoints as replica ids (-1 for a
   * client); returns how many copies arrive (0, 1 or 2), their delays in firstDelayUs and
   * secondDelayUs. Draws the same random numbers in the same order as route().
   */
  routeIds(a: number, b: number): number {
    this.stats.sent++;
    if (a >= 0 && b >= 0 && !this.canReach(a, b)) {
      this.stats.partitioned++;
      return 0;
    }
    const config = this.config;
    let dropRate = config.drop;
    let duplicateRate = config.duplicate;
    let reorderRate = config.reorder;
    let reorderBound = config.reorderDelayUs;
    let extraDelay = 0;
    if (this.rules.size > 0) {
      for (const rule of this.rules.values()) {
        if (!applies(rule, a, b)) continue;
        switch (rule.kind) {
          case 'drop':
            dropRate = combine(dropRate, rule.rate);
            break;
          case 'duplicate':
            duplicateRate = combine(duplicateRate, rule.rate);
            break;
          case 'reorder':
            reorderRate = combine(reorderRate, rule.rate);
            reorderBound = Math.max(reorderBound, rule.delayUs);
            break;
          case 'delay':
            extraDelay += rule.delayUs;
            break;
        }
      }
    }
    if (dropRate > 0 && this.rng.next() < dropRate) {
      this.stats.dropped++;
      return 0;
    }
    if (extraDelay > 0) this.stats.delayed++;
    this.firstDelayUs = this.oneCopy(extraDelay, reorderRate, reorderBound);
    if (duplicateRate > 0 && this.rng.next() < duplicateRate) {
      this.stats.duplicated++;
      this.secondDelayUs = this.oneCopy(extraDelay, reorderRate, reorderBound);
      return 2;
    }
    return 1;
  }

  private oneCopy(extraDelay: number, reorderRate: number, reorderBound: number): number {
    let delay = this.baseLatency() + extraDelay;
    if (reorderRate > 0 && this.rng.next() < reorderRate) {
      this.stats.reordered++;
      delay += Math.round(this.rng.next() * reorderBound);
    }
    return delay;
  }
}

function applies(rule: LinkRule, from: number, to: number): boolean {
  if (rule.links !== undefined) return rule.links.some(([x, y]) => x === from && y === to);
  return rule.nodes === null || rule.nodes.has(from) || rule.nodes.has(to);
}

/** Two independent chances of the same effect. */
function combine(p: number, q: number): number {
  return 1 - (1 - p) * (1 - q);
}
