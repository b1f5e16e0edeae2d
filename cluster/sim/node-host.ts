/**
 * One simulated replica: implements `ReplicaEnv` on top of the simulator and the network model.
 * Time is this node's own clock (sim/node-clock.ts: virtual time, stepped and drifting under a
 * clock_skew fault); timers are simulator events on its monotonic clock (cancelled on a crash,
 * re-timed when the drift changes); outbound messages pass through the node's misbehaviour filter (chaos/byzantine.ts), so a
 * Byzantine node runs unmodified protocol code with adversarial wiring (the Twins idea).
 */
import type { Rng } from '../../core/rng.ts';
import type { FaultKind, TraceRecord } from '../../core/trace-schema.ts';
import { traceRecordOf } from '../trace-record.ts';
import { createAuthenticator } from '../auth.ts';
import type {
  Authenticator,
  ClientReply,
  Message,
  NodeId,
  ProtocolDefinition,
  ProtocolOptions,
  Replica,
  ReplicaEnv,
  TimerHandle,
  Transition,
} from '../protocol.ts';
import type { HarnessStateMachine, StateCheck } from './harness-state.ts';
import type { Simulator } from './simulator.ts';
import { NodeClock } from './node-clock.ts';
import { TimerTable } from './timer-table.ts';
import { protocolState, ReplicaTelemetry } from '../telemetry.ts';
import type { MetricsSnapshot } from '../../core/metrics-snapshot.ts';
import { Misbehaviour, outboundCopies, type OutboundNode } from '../chaos/byzantine.ts';

/** The cluster-wide services a host uses; implemented by SimCluster. */
export interface HostContext {
  readonly sim: Simulator;
  readonly runId: string;
  readonly protocol: ProtocolDefinition;
  readonly replicas: readonly NodeId[];
  readonly f: number;
  readonly clusterSecret: string;
  transmit(from: NodeId, to: NodeId, message: Message): void;
  transmitReply(from: NodeId, reply: ClientReply): void;
  emit(record: TraceRecord): void;
  /** Active fault kinds and targeted nodes, sorted and unique (ground-truth labels); frozen
   * arrays, replaced when the active set changes and never changed in place. */
  activeFaults(): readonly FaultKind[];
  activeFaultyNodes(): readonly NodeId[];
  /** The cluster is back from a fault but not yet normal again (chaos/engine.ts recovering()). */
  recovering(): boolean;
  onShadowMismatch(node: NodeId, nodeSeq: number, check: StateCheck): void;
  /** Each transition's state check, before its labels are read: an effect that lasts as long
   * as a node's state is wrong (state corruption) ends, with its label, when the state is right. */
  onStateChecked(node: NodeId, match: boolean): void;
  /** A fresh, empty state machine for `node` (a restart with amnesia). */
  createStateMachine(node: NodeId): HarnessStateMachine;
}

export class NodeHost implements ReplicaEnv, OutboundNode {
  readonly replicas: readonly NodeId[];
  readonly f: number;
  readonly auth: Authenticator;
  /** Replaced, with the state machine, when the node restarts with amnesia. */
  replica: Replica;
  readonly misbehaviour = new Misbehaviour();
  readonly byzantineHooks: ProtocolDefinition['byzantine'];
  /** This node's wall and monotonic clocks (clock_skew steps and drifts them). */
  readonly clock: NodeClock;
  crashed = false;
  private readonly timers: TimerTable;
  /** Counters for this node's metrics snapshots (cluster/telemetry.ts). */
  readonly telemetry: ReplicaTelemetry;
  private nodeSeq = 0;
  private sentSinceRecord = 0;
  private receivedSinceRecord = 0;
  /** `misbehaviour.altered` when the last record was built. */
  private alteredAtRecord = 0;
  /** What the last record built carried as `alteredSinceRecord` (the future byzantine_altered). */
  lastRecordAltered = 0;
  private mismatched = false;

  constructor(
    readonly id: NodeId,
    private readonly ctx: HostContext,
    public stateMachine: HarnessStateMachine,
    readonly rng: Rng,
    /** Randomness of the chaos engine's decisions for this node, separate from the protocol's. */
    readonly chaosRng: Rng,
    private readonly options: ProtocolOptions,
  ) {
    const sim = ctx.sim;
    this.clock = new NodeClock(() => sim.nowUs());
    this.timers = new TimerTable(sim, this.clock);
    this.replicas = ctx.replicas;
    this.f = ctx.f;
    this.auth = createAuthenticator(ctx.clusterSecret, id, ctx.replicas.length);
    this.byzantineHooks = ctx.protocol.byzantine;
    this.replica = ctx.protocol.createReplica(this, options);
    this.telemetry = new ReplicaTelemetry(id, ctx.replicas, ctx.sim.nowUs());
  }

  nowUs(): number {
    return this.clock.wallUs();
  }

  /** Outbound messages the Byzantine switches dropped, rewrote or added since the last record. */
  get alteredSinceRecord(): number {
    return this.misbehaviour.altered - this.alteredAtRecord;
  }

  /** A clock_skew offset: the wall clock steps; timers (monotonic) do not move. */
  stepClock(deltaUs: number): void {
    this.clock.step(deltaUs);
  }

  /** A clock_skew drift starting (+) or ending (−): pending timers move to the new rate. At the
   * end (`reset`) the wall clock is set right, as an NTP step would. */
  addClockDrift(deltaPpm: number, reset: boolean): void {
    this.clock.addDrift(deltaPpm);
    if (reset) this.clock.resetWallDrift();
    this.timers.retime();
  }

  send(to: NodeId, message: Message): void {
    if (this.crashed) return;
    this.misbehaviour.remember(message);
    this.sendOne(to, message);
  }

  broadcast(message: Message): void {
    if (this.crashed) return;
    this.misbehaviour.remember(message);
    for (const to of this.replicas) if (to !== this.id) this.sendOne(to, message);
  }

  private sendOne(to: NodeId, message: Message): void {
    if (!this.misbehaviour.active) {
      this.sentSinceRecord++;
      this.telemetry.sent(to);
      this.ctx.transmit(this.id, to, message);
      return;
    }
    for (const copy of outboundCopies(this, to, message)) {
      this.sentSinceRecord++;
      this.telemetry.sent(copy.to);
      this.ctx.transmit(this.id, copy.to, copy.message);
    }
  }

  replyToClient(reply: ClientReply): void {
    if (this.crashed) return;
    if (this.misbehaviour.silent > 0) {
      this.misbehaviour.altered++;
      return;
    }
    this.sentSinceRecord++;
    this.ctx.transmitReply(this.id, reply);
  }

  setTimer(afterUs: number, name: string, data?: unknown): TimerHandle {
    return this.timers.set(afterUs, () => {
      if (this.crashed) return;
      this.telemetry.timerFired(name);
      this.replica.onTimer(name, data);
    });
  }

  cancelTimer(handle: TimerHandle): void {
    this.timers.cancel(handle);
  }

  /** A message arrives from the network. */
  deliver(message: Message): void {
    if (this.crashed) return;
    this.receivedSinceRecord++;
    this.telemetry.received(message.from);
    this.misbehaviour.remember(message);
    this.replica.onMessage(message);
  }

  deliverRequest(request: Parameters<Replica['onClientRequest']>[0]): void {
    if (this.crashed) return;
    this.receivedSinceRecord++;
    this.replica.onClientRequest(request);
  }

  /** The metrics snapshot of the interval ending now (a crashed node is not asked: it reports nothing). */
  takeSnapshot(): MetricsSnapshot {
    const nowUs = this.ctx.sim.nowUs();
    return this.telemetry.take({
      runId: this.ctx.runId,
      protocol: this.ctx.protocol.name,
      tsUs: nowUs,
      nodeClockUs: this.nowUs(),
      ...protocolState(this.replica.progressReport()),
      faults: this.ctx.activeFaults(),
      faultyNodes: this.ctx.activeFaultyNodes(),
      recovering: this.ctx.recovering(),
    });
  }

  start(): void {
    this.replica.start();
  }

  /** Stops the node: no receiving, no timers. Durable replica fields survive for the restart. */
  crash(): void {
    if (this.crashed) return;
    this.crashed = true;
    this.timers.cancelAll();
  }

  /** Back from a crash. With amnesia the node lost its disk too: a new replica and an empty state
   * machine, as on first boot (it catches up from its peers). */
  restart({ amnesia = false }: { amnesia?: boolean } = {}): void {
    if (!this.crashed) return;
    this.crashed = false;
    if (amnesia) {
      this.stateMachine = this.ctx.createStateMachine(this.id);
      this.replica = this.ctx.protocol.createReplica(this, this.options);
      this.mismatched = false;
    }
    this.replica.start();
  }

  trace(transition: Transition): void {
    const ctx = this.ctx;
    const check = this.stateMachine.check();
    // The state itself, not `match`: a wrong result already returned stays a mismatch for the
    // checks, but the corruption's effect on the state is over once the digests agree.
    ctx.onStateChecked(this.id, check.runtime === check.shadow);
    const nodeSeq = this.nodeSeq++;
    const tsUs = ctx.sim.nowUs();
    const altered = this.misbehaviour.altered - this.alteredAtRecord;
    const record = traceRecordOf(
      {
        runId: ctx.runId,
        node: this.id,
        nodeSeq,
        protocol: ctx.protocol.name,
        tsUs,
        nodeClockUs: this.clock.wallUs(),
        msgsSent: this.sentSinceRecord,
        msgsReceived: this.receivedSinceRecord,
        runtimeHash: check.runtime,
        shadowHash: check.shadow,
        // Shared, not copied: the chaos engine hands out frozen arrays and replaces them when
        // the active set changes, so records of one fault period can share one array.
        faults: ctx.activeFaults() as FaultKind[],
        faultyNodes: ctx.activeFaultyNodes() as NodeId[],
        byzantineAltered: altered,
        recovering: ctx.recovering(),
      },
      transition,
    );
    this.sentSinceRecord = 0;
    this.receivedSinceRecord = 0;
    this.alteredAtRecord = this.misbehaviour.altered;
    this.lastRecordAltered = altered;
    // Count a divergence once when it appears, not on every later transition of the same node.
    if (!check.match && !this.mismatched) ctx.onShadowMismatch(this.id, nodeSeq, check);
    this.mismatched = !check.match;
    ctx.emit(record);
  }
}
