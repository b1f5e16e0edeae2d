/**
 * What a node counts between two metrics snapshots (core/metrics-snapshot.ts), and the snapshot
 * made from it. One implementation for the simulator's hosts and the TCP node process, so both
 * report the same counters the same way; the host decides when an interval ends (virtual or wall
 * time) and supplies the clocks, the protocol's progress and the labels.
 */
import { REJECT_REASONS, SNAPSHOT_RECORD_TYPE, SNAPSHOT_SCHEMA_VERSION, snapshotIdOf, type MetricsSnapshot, type RejectReason, type SnapshotSource } from '../core/metrics-snapshot.ts';
import type { FaultKind, Protocol } from '../core/trace-schema.ts';
import type { NodeId, ReplicaProgress } from './protocol.ts';

/** Default snapshot interval: the features' default window, so each window holds one snapshot. */
export const SNAPSHOT_INTERVAL_US = 100_000;

type RejectionCounts = Record<RejectReason, number>;
const noRejections = (): RejectionCounts => Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])) as RejectionCounts;

/** The host's side of a snapshot: who, when, the protocol's state and the labels. */
export interface SnapshotContext {
  readonly runId: string;
  readonly protocol: Protocol;
  readonly tsUs: number;
  readonly nodeClockUs: number;
  readonly view: number;
  readonly backlog: number;
  readonly logSize: number;
  readonly faults: readonly FaultKind[];
  readonly faultyNodes: readonly NodeId[];
  readonly recovering: boolean;
}

/** The snapshot's view of a replica's progress report. */
export function protocolState(progress: ReplicaProgress): Pick<SnapshotContext, 'view' | 'backlog' | 'logSize'> {
  return { view: progress.view, backlog: progress.backlog, logSize: progress.logSize };
}

/** A replica's counters for the current interval. */
export class ReplicaTelemetry {
  private readonly peers: readonly NodeId[];
  /** Peer id → index in the per-peer arrays. */
  private readonly peerIndex = new Map<NodeId, number>();
  private sentTo: number[];
  private receivedFrom: number[];
  private quorumLast: number[];
  private votesFrom: number[];
  private voteWaitUs: number[];
  private rejections = noRejections();
  private timers = new Map<string, number>();
  private quorums = 0;
  private quorumWaitSumUs = 0;
  private quorumWaitMaxUs = 0;
  private snapSeq = 0;
  private intervalStartUs: number;

  constructor(
    readonly node: NodeId,
    replicas: readonly NodeId[],
    startUs: number,
  ) {
    this.peers = replicas.filter((r) => r !== node);
    this.peers.forEach((peer, i) => this.peerIndex.set(peer, i));
    this.sentTo = this.peers.map(() => 0);
    this.receivedFrom = this.peers.map(() => 0);
    this.quorumLast = this.peers.map(() => 0);
    this.votesFrom = this.peers.map(() => 0);
    this.voteWaitUs = this.peers.map(() => 0);
    this.intervalStartUs = startUs;
  }

  sent(to: NodeId): void {
    const i = this.peerIndex.get(to);
    if (i !== undefined) this.sentTo[i]!++;
  }

  received(from: NodeId): void {
    const i = this.peerIndex.get(from);
    if (i !== undefined) this.receivedFrom[i]!++;
  }

  rejected(reason: RejectReason): void {
    this.rejections[reason]++;
  }

  timerFired(name: string): void {
    this.timers.set(name, (this.timers.get(name) ?? 0) + 1);
  }

  quorumCompleted(waitedUs: number, lastPeer: NodeId): void {
    const wait = Math.max(0, Math.round(waitedUs));
    this.quorums++;
    this.quorumWaitSumUs += wait;
    if (wait > this.quorumWaitMaxUs) this.quorumWaitMaxUs = wait;
    const i = this.peerIndex.get(lastPeer);
    if (i !== undefined) this.quorumLast[i]!++;
  }

  voteReceived(from: NodeId, waitedUs: number): void {
    const i = this.peerIndex.get(from);
    if (i === undefined) return;
    this.votesFrom[i]!++;
    this.voteWaitUs[i]! += Math.max(0, Math.round(waitedUs));
  }

  /** The snapshot of the interval ending now; the counters start again from zero. */
  take(context: SnapshotContext): MetricsSnapshot {
    const timerNames = [...this.timers.keys()].sort();
    const snapshot: MetricsSnapshot = {
      ...header(context, 'replica', this.node, this.snapSeq++, context.tsUs - this.intervalStartUs),
      view: context.view,
      peers: [...this.peers],
      sent_to: this.sentTo,
      received_from: this.receivedFrom,
      quorum_last_peer: this.quorumLast,
      votes_from: this.votesFrom,
      vote_wait_us_sum: this.voteWaitUs,
      ...rejectionFields(this.rejections),
      timer_names: timerNames,
      timer_fired: timerNames.map((name) => this.timers.get(name)!),
      quorums_completed: this.quorums,
      quorum_wait_us_sum: this.quorumWaitSumUs,
      quorum_wait_us_max: this.quorumWaitMaxUs,
      backlog: context.backlog,
      log_size: context.logSize,
      client_ops_completed: 0,
      client_latency_us_sum: 0,
      client_latency_us_max: 0,
      client_retries: 0,
      client_pending: 0,
      ...labels(context),
    };
    this.sentTo = this.peers.map(() => 0);
    this.receivedFrom = this.peers.map(() => 0);
    this.quorumLast = this.peers.map(() => 0);
    this.votesFrom = this.peers.map(() => 0);
    this.voteWaitUs = this.peers.map(() => 0);
    this.rejections = noRejections();
    this.timers = new Map();
    this.quorums = 0;
    this.quorumWaitSumUs = 0;
    this.quorumWaitMaxUs = 0;
    this.intervalStartUs = context.tsUs;
    return snapshot;
  }
}

/** A client's counters for the current interval. */
export class ClientTelemetry {
  private completed = 0;
  private latencySumUs = 0;
  private latencyMaxUs = 0;
  private retries = 0;
  private snapSeq = 0;
  private intervalStartUs: number;

  constructor(
    readonly client: number,
    startUs: number,
  ) {
    this.intervalStartUs = startUs;
  }

  opCompleted(latencyUs: number): void {
    const latency = Math.max(0, Math.round(latencyUs));
    this.completed++;
    this.latencySumUs += latency;
    if (latency > this.latencyMaxUs) this.latencyMaxUs = latency;
  }

  retried(): void {
    this.retries++;
  }

  take(context: Omit<SnapshotContext, 'view' | 'backlog' | 'logSize'>, pending: number): MetricsSnapshot {
    const snapshot: MetricsSnapshot = {
      ...header(context, 'client', this.client, this.snapSeq++, context.tsUs - this.intervalStartUs),
      view: 0,
      peers: [],
      sent_to: [],
      received_from: [],
      quorum_last_peer: [],
      votes_from: [],
      vote_wait_us_sum: [],
      ...rejectionFields(noRejections()),
      timer_names: [],
      timer_fired: [],
      quorums_completed: 0,
      quorum_wait_us_sum: 0,
      quorum_wait_us_max: 0,
      backlog: pending,
      log_size: 0,
      client_ops_completed: this.completed,
      client_latency_us_sum: this.latencySumUs,
      client_latency_us_max: this.latencyMaxUs,
      client_retries: this.retries,
      client_pending: pending,
      ...labels(context),
    };
    this.completed = 0;
    this.latencySumUs = 0;
    this.latencyMaxUs = 0;
    this.retries = 0;
    this.intervalStartUs = context.tsUs;
    return snapshot;
  }
}

function header(context: Pick<SnapshotContext, 'runId' | 'protocol' | 'tsUs' | 'nodeClockUs'>, source: SnapshotSource, node: number, snapSeq: number, intervalUs: number) {
  return {
    record_type: SNAPSHOT_RECORD_TYPE,
    schema_version: SNAPSHOT_SCHEMA_VERSION,
    run_id: context.runId,
    snapshot_id: snapshotIdOf(context.runId, source, node, snapSeq),
    source,
    node,
    snap_seq: snapSeq,
    protocol: context.protocol,
    ts_us: context.tsUs,
    node_clock_us: Math.max(0, Math.round(context.nodeClockUs)),
    interval_us: Math.max(0, intervalUs),
  } as const;
}

function rejectionFields(counts: RejectionCounts): { [R in RejectReason as `rejected_${R}`]: number } {
  return Object.fromEntries(REJECT_REASONS.map((reason) => [`rejected_${reason}`, counts[reason]])) as { [R in RejectReason as `rejected_${R}`]: number };
}

function labels(context: Pick<SnapshotContext, 'faults' | 'faultyNodes' | 'recovering'>) {
  return { faults: [...context.faults], faulty_nodes: [...context.faultyNodes], recovering: context.recovering };
}
