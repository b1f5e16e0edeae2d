/**
 * A simulated cluster: the simulator, the network model, n replica hosts, K client hosts and the
 * chaos engine, wired together. It routes every message through the network model, collects the
 * trace records and the client history, and counts shadow mismatches.
 */
import { createRng, type Rng } from '../../core/rng.ts';
import { invariant } from '../../core/errors.ts';
import type { MetricsSnapshot } from '../../core/metrics-snapshot.ts';
import type { FaultKind, TraceRecord } from '../../core/trace-schema.ts';
import { ChaosEngine } from '../chaos/engine.ts';
import type { ClientReply, ClientRequest, Message, NodeId, ProtocolDefinition, ProtocolOptions } from '../protocol.ts';
import { ClientHost, type ClientContext } from './client-host.ts';
import type { HarnessStateMachine, StateCheck, StateMachineFactory } from './harness-state.ts';
import type { HistoryEvent } from './history.ts';
import { NetworkModel, type NetworkConfig } from './network.ts';
import { NodeHost, type HostContext } from './node-host.ts';
import { Simulator } from './simulator.ts';
import type { WorkloadConfig } from './workload.ts';

export interface ClusterConfig {
  readonly runId: string;
  readonly seed: number | string;
  readonly protocol: ProtocolDefinition;
  readonly options: ProtocolOptions;
  readonly nodes: number;
  readonly clients: number;
  readonly network: NetworkConfig;
  readonly workload: WorkloadConfig;
  readonly createStateMachine: StateMachineFactory;
  /** Secret the per-node MAC keys derive from; fixed per run so MACs (and traces) reproduce. */
  readonly clusterSecret?: string;
  /** Keep the whole client history in `history` (default false: events go to `onHistory` listeners only). */
  readonly keepHistory?: boolean;
}

/** Shadow mismatches kept in full; later ones are only counted (a flapping node could add one per transition pair). */
const SHADOW_MISMATCHES_KEPT = 1_000;

export interface ShadowMismatch {
  readonly node: NodeId;
  readonly nodeSeq: number;
  readonly tsUs: number;
  readonly runtime: string;
  readonly shadow: string;
}

export class SimCluster implements HostContext, ClientContext {
  readonly sim = new Simulator();
  readonly network: NetworkModel;
  readonly hosts: NodeHost[] = [];
  readonly clients: ClientHost[] = [];
  readonly chaos: ChaosEngine;
  readonly runId: string;
  readonly protocol: ProtocolDefinition;
  readonly replicas: readonly NodeId[];
  readonly f: number;
  readonly clusterSecret: string;
  private readonly stateMachineFactory: StateMachineFactory;
  /** The client history, when the config asked to keep it (else empty). */
  readonly history: HistoryEvent[] = [];
  private readonly keepHistory: boolean;
  private readonly historyListeners: Array<(event: HistoryEvent) => void> = [];
  readonly shadowMismatches: ShadowMismatch[] = [];
  shadowMismatchCount = 0;
  /** Records emitted and not yet handed to the sink. */
  pendingRecords: TraceRecord[] = [];
  recordCount = 0;
  /** Metrics snapshots taken and not yet handed to the sink. */
  pendingSnapshots: MetricsSnapshot[] = [];
  snapshotCount = 0;
  private readonly recordListeners: Array<(record: TraceRecord) => void> = [];
  // Delivery events: one function per cluster, called with (receiver, payload), instead of a
  // closure per message (deliveries are most of the simulator's events).
  private readonly deliverMessage = (host: NodeHost, message: Message): void => {
    this.network.stats.delivered++;
    host.deliver(message);
  };
  private readonly deliverReply = (client: ClientHost, reply: ClientReply): void => {
    this.network.stats.delivered++;
    client.onReply(reply);
  };
  private readonly deliverRequest = (host: NodeHost, request: ClientRequest): void => {
    this.network.stats.delivered++;
    host.deliverRequest(request);
  };

  constructor(config: ClusterConfig) {
    const root: Rng = createRng(config.seed);
    this.runId = config.runId;
    this.protocol = config.protocol;
    this.replicas = Array.from({ length: config.nodes }, (_, i) => i);
    this.f = config.protocol.faultTolerance(config.nodes);
    this.clusterSecret = config.clusterSecret ?? `lattice-sim/${String(config.seed)}`;
    this.stateMachineFactory = config.createStateMachine;
    this.keepHistory = config.keepHistory ?? false;
    this.network = new NetworkModel(config.network, root.fork('network'));
    this.chaos = new ChaosEngine(this, root.fork('chaos'));
    for (const id of this.replicas) {
      this.hosts.push(new NodeHost(id, this, config.createStateMachine(id), root.fork(`replica/${id}`), root.fork(`byzantine/${id}`), config.options));
    }
    for (let c = 0; c < config.clients; c++) {
      this.clients.push(new ClientHost(c, this, root.fork(`client/${c}`), config.workload, config.options));
    }
  }

  /** Called with every client history event as it happens (the run checks them here). */
  onHistory(listener: (event: HistoryEvent) => void): void {
    this.historyListeners.push(listener);
  }

  /** Called for every record as it is emitted (the run hashes them here, in emission order). */
  onRecord(listener: (record: TraceRecord) => void): void {
    this.recordListeners.push(listener);
  }

  transmit(from: NodeId, to: NodeId, message: Message): void {
    const host = this.hosts[to];
    if (host === undefined) return;
    const network = this.network;
    const copies = network.routeIds(from, to);
    if (copies >= 1) this.sim.scheduleCall(network.firstDelayUs, 'message', this.deliverMessage, host, message);
    if (copies === 2) this.sim.scheduleCall(network.secondDelayUs, 'message', this.deliverMessage, host, message);
  }

  transmitReply(from: NodeId, reply: ClientReply): void {
    const client = this.clients[reply.clientId];
    if (client === undefined) return;
    const network = this.network;
    const copies = network.routeIds(from, -1);
    if (copies >= 1) this.sim.scheduleCall(network.firstDelayUs, 'message', this.deliverReply, client, reply);
    if (copies === 2) this.sim.scheduleCall(network.secondDelayUs, 'message', this.deliverReply, client, reply);
  }

  sendRequest(_clientId: number, to: NodeId, request: ClientRequest): void {
    const host = this.hosts[to];
    if (host === undefined) return;
    const network = this.network;
    const copies = network.routeIds(-1, to);
    if (copies >= 1) this.sim.scheduleCall(network.firstDelayUs, 'message', this.deliverRequest, host, request);
    if (copies === 2) this.sim.scheduleCall(network.secondDelayUs, 'message', this.deliverRequest, host, request);
  }

  emit(record: TraceRecord): void {
    this.recordCount++;
    this.pendingRecords.push(record);
    for (const listener of this.recordListeners) listener(record);
  }

  takePendingSnapshots(): MetricsSnapshot[] {
    const batch = this.pendingSnapshots;
    this.pendingSnapshots = [];
    return batch;
  }

  /**
   * Every `intervalUs` of virtual time, each live replica and each client reports a metrics
   * snapshot of the interval just ended. A crashed replica reports nothing (its silence is the
   * evidence); it resumes, with the counters since its crash, after a restart.
   */
  startTelemetry(intervalUs: number): void {
    invariant(Number.isInteger(intervalUs) && intervalUs > 0, `snapshot interval ${intervalUs} µs must be a positive integer`);
    const tick = (): void => {
      const before = this.pendingSnapshots.length;
      for (const host of this.hosts) if (!host.crashed) this.pendingSnapshots.push(host.takeSnapshot());
      for (const client of this.clients) this.pendingSnapshots.push(client.takeSnapshot(this.chaos.activeFaults(), this.chaos.activeFaultyNodes(), this.chaos.recovering()));
      this.snapshotCount += this.pendingSnapshots.length - before;
      this.sim.schedule(intervalUs, 'timer', tick);
    };
    this.sim.schedule(intervalUs, 'timer', tick);
  }

  takePendingRecords(): TraceRecord[] {
    const batch = this.pendingRecords;
    this.pendingRecords = [];
    return batch;
  }

  recovering(): boolean {
    return this.chaos.recovering();
  }

  activeFaults(): readonly FaultKind[] {
    return this.chaos.activeFaults();
  }

  activeFaultyNodes(): readonly NodeId[] {
    return this.chaos.activeFaultyNodes();
  }

  createStateMachine(node: NodeId): HarnessStateMachine {
    return this.stateMachineFactory(node);
  }

  onStateChecked(node: NodeId, match: boolean): void {
    this.chaos.onStateChecked(node, match);
  }

  onShadowMismatch(node: NodeId, nodeSeq: number, check: StateCheck): void {
    this.shadowMismatchCount++;
    if (this.shadowMismatches.length < SHADOW_MISMATCHES_KEPT) {
      this.shadowMismatches.push({ node, nodeSeq, tsUs: this.sim.nowUs(), runtime: check.runtime, shadow: check.shadow });
    }
  }

  record(event: HistoryEvent): void {
    if (this.keepHistory) this.history.push(event);
    for (const listener of this.historyListeners) listener(event);
  }

  get clientsIdle(): boolean {
    return this.clients.every((c) => c.idle);
  }

  /** Boots every replica and staggers the clients' first operations over the first millisecond. */
  boot(): void {
    for (const host of this.hosts) host.start();
    this.clients.forEach((client, i) => client.scheduleNext(1 + Math.floor((i * 1000) / Math.max(1, this.clients.length))));
  }
}

