/**
 * A small deterministic harness for the EPaxos tests (the real simulator lives in cluster/sim/):
 * one seeded event queue on virtual time, a network that can drop, duplicate, delay (reorder)
 * and partition, crash/restart of nodes with durable replica objects, and an in-memory state
 * machine that logs every operation it executes.
 */
import type { RejectReason } from '../../core/metrics-snapshot.ts';
import { createAuthenticator } from '../../cluster/auth.ts';
import { epaxosProtocol } from '../../cluster/epaxos/index.ts';
import { EpaxosReplica, type EpaxosLimits } from '../../cluster/epaxos/replica.ts';
import type {
  ReplicaCounters,
  ClientEnv,
  ClientReply,
  ClientRequest,
  Message,
  NodeId,
  Operation,
  OperationResult,
  ProtocolClient,
  ProtocolOptions,
  Replica,
  ReplicaEnv,
  StateMachine,
  StateSnapshot,
  TimerHandle,
  Transition,
} from '../../cluster/protocol.ts';
import { DEFAULT_PROTOCOL_OPTIONS } from '../../cluster/protocol.ts';
import { createRng, hashString, type Rng } from '../../core/rng.ts';

export class LoggingStateMachine implements StateMachine {
  readonly data = new Map<string, string>();
  readonly log: Operation[] = [];

  execute(op: Operation): OperationResult {
    this.log.push(op);
    const before = this.data.get(op.key) ?? null;
    switch (op.kind) {
      case 'read':
        return { value: before, applied: true };
      case 'write':
        this.data.set(op.key, op.value);
        return { value: op.value, applied: true };
      case 'cas': {
        const applied = before === op.expected;
        if (applied) this.data.set(op.key, op.value);
        return { value: before, applied };
      }
    }
  }

  digest(): string {
    const entries = [...this.data.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return hashString(JSON.stringify(entries)).toString(16).padStart(64, '0');
  }

  snapshot(): StateSnapshot {
    return { entries: [...this.data.entries()] };
  }

  restore(snapshot: StateSnapshot): void {
    this.data.clear();
    for (const [k, v] of snapshot.entries) this.data.set(k, v);
  }
}

interface QueuedEvent {
  readonly at: number;
  readonly order: number;
  readonly run: () => void;
  cancelled: boolean;
}

export interface NetworkFaults {
  dropRate: number;
  duplicateRate: number;
  /** Message delay is uniform in [minDelayUs, maxDelayUs]: unequal delays reorder messages. */
  minDelayUs: number;
  maxDelayUs: number;
}

export interface SentMessage {
  readonly at: number;
  readonly from: NodeId;
  readonly to: NodeId;
  readonly message: Message;
}

export interface TracedTransition extends Transition {
  readonly node: NodeId;
  readonly at: number;
}

class TestNode implements ReplicaEnv {
  readonly replicas: readonly NodeId[];
  readonly f: number;
  readonly rng: Rng;
  readonly auth;
  stateMachine = new LoggingStateMachine();
  replica: Replica;
  crashed = false;
  private readonly timers = new Map<number, QueuedEvent>();
  private nextTimer = 1;

  constructor(
    readonly id: NodeId,
    private readonly cluster: TestCluster,
    private readonly options: ProtocolOptions,
  ) {
    this.replicas = cluster.replicaIds;
    this.f = Math.floor((cluster.replicaIds.length - 1) / 2);
    this.rng = cluster.rng.fork(`node-${id}`);
    this.auth = createAuthenticator('test-cluster-secret', id, cluster.replicaIds.length);
    this.replica = this.createReplica();
  }

  private createReplica(): Replica {
    const limits = this.cluster.limits;
    return limits === undefined ? epaxosProtocol.createReplica(this, this.options) : new EpaxosReplica(this, this.options, limits);
  }

  /** Back with an empty disk: a new replica and state machine, as on first boot. */
  loseState(): void {
    this.stateMachine = new LoggingStateMachine();
    this.replica = this.createReplica();
  }

  nowUs(): number {
    return this.cluster.now;
  }

  send(to: NodeId, message: Message): void {
    if (!this.crashed) this.cluster.transmit(this.id, to, message);
  }

  broadcast(message: Message): void {
    for (const to of this.replicas) if (to !== this.id) this.send(to, message);
  }

  replyToClient(reply: ClientReply): void {
    if (!this.crashed) this.cluster.deliverReply(reply);
  }

  setTimer(afterUs: number, name: string, data?: unknown): TimerHandle {
    const id = this.nextTimer++;
    const event = this.cluster.schedule(afterUs, () => {
      this.timers.delete(id);
      if (!this.crashed) this.replica.onTimer(name, data);
    });
    this.timers.set(id, event);
    return { id };
  }

  cancelTimer(handle: TimerHandle): void {
    const event = this.timers.get(handle.id);
    if (event !== undefined) event.cancelled = true;
    this.timers.delete(handle.id);
  }

  trace(transition: Transition): void {
    this.cluster.transitions.push({ ...transition, node: this.id, at: this.cluster.now });
  }

  readonly telemetry: ReplicaCounters = {
    rejected: (reason: RejectReason) => this.cluster.rejections.push({ node: this.id, reason }),
    quorumCompleted: () => {},
    voteReceived: () => {},
  };

  crash(): void {
    this.crashed = true;
    for (const event of this.timers.values()) event.cancelled = true;
    this.timers.clear();
  }
}

class TestClient implements ClientEnv {
  readonly replicas: readonly NodeId[];
  readonly f: number;
  readonly rng: Rng;
  readonly client: ProtocolClient;
  readonly results = new Map<number, OperationResult>();
  readonly sentTo: NodeId[] = [];
  private nextTimer = 1;
  private readonly timers = new Map<number, QueuedEvent>();

  constructor(
    readonly clientId: number,
    private readonly cluster: TestCluster,
    options: ProtocolOptions,
  ) {
    this.replicas = cluster.replicaIds;
    this.f = Math.floor((cluster.replicaIds.length - 1) / 2);
    this.rng = cluster.rng.fork(`client-${clientId}`);
    this.client = epaxosProtocol.createClient(this, options);
  }

  nowUs(): number {
    return this.cluster.now;
  }

  sendRequest(to: NodeId, request: ClientRequest): void {
    this.sentTo.push(to);
    this.cluster.deliverRequest(to, request);
  }

  setTimer(afterUs: number, name: string, data?: unknown): TimerHandle {
    const id = this.nextTimer++;
    const event = this.cluster.schedule(afterUs, () => {
      this.timers.delete(id);
      this.client.onTimer(name, data);
    });
    this.timers.set(id, event);
    return { id };
  }

  cancelTimer(handle: TimerHandle): void {
    const event = this.timers.get(handle.id);
    if (event !== undefined) event.cancelled = true;
    this.timers.delete(handle.id);
  }

  complete(requestId: number, result: OperationResult): void {
    if (this.results.has(requestId)) throw new Error(`request ${requestId} completed twice`);
    this.results.set(requestId, result);
  }

  retried(): void {}
}

export interface ClusterOptions {
  readonly n: number;
  readonly seed: number | string;
  readonly faults?: Partial<NetworkFaults>;
  readonly protocol?: Partial<ProtocolOptions>;
  /** EPaxos memory bounds (default: the replica's). */
  readonly limits?: EpaxosLimits;
}

export class TestCluster {
  now = 1_000_000;
  readonly rng: Rng;
  readonly replicaIds: readonly NodeId[];
  readonly nodes: TestNode[];
  readonly clients = new Map<number, TestClient>();
  readonly transitions: TracedTransition[] = [];
  /** Messages each replica refused, and why (the metrics snapshots' rejection counters). */
  readonly rejections: { node: NodeId; reason: RejectReason }[] = [];
  readonly sent: SentMessage[] = [];
  readonly faults: NetworkFaults;
  /** Pairs "a-b" that cannot talk (both directions). */
  readonly cut = new Set<string>();
  /** Inspect or rewrite messages in flight; return null to drop. */
  interceptor: ((m: SentMessage) => Message | null) | null = null;
  readonly options: ProtocolOptions;
  readonly limits: EpaxosLimits | undefined;
  private readonly queue: QueuedEvent[] = [];
  private order = 0;
  private readonly netRng: Rng;

  constructor(opts: ClusterOptions) {
    this.rng = createRng(opts.seed);
    this.netRng = this.rng.fork('network');
    this.faults = { dropRate: 0, duplicateRate: 0, minDelayUs: 1_000, maxDelayUs: 1_000, ...opts.faults };
    this.options = { ...DEFAULT_PROTOCOL_OPTIONS, ...opts.protocol };
    this.limits = opts.limits;
    this.replicaIds = Array.from({ length: opts.n }, (_, i) => i);
    this.nodes = this.replicaIds.map((id) => new TestNode(id, this, this.options));
    for (const node of this.nodes) node.replica.start();
  }

  node(id: NodeId): TestNode {
    const node = this.nodes[id];
    if (node === undefined) throw new RangeError(`no node ${id}`);
    return node;
  }

  client(clientId: number): TestClient {
    let client = this.clients.get(clientId);
    if (client === undefined) {
      client = new TestClient(clientId, this, this.options);
      this.clients.set(clientId, client);
    }
    return client;
  }

  submit(clientId: number, requestId: number, op: Operation): void {
    this.client(clientId).client.submit({ clientId, requestId, op });
  }

  schedule(afterUs: number, run: () => void): QueuedEvent {
    const event: QueuedEvent = { at: this.now + Math.max(0, afterUs), order: this.order++, run, cancelled: false };
    // Sorted insert from the back: most events land near the end.
    let i = this.queue.length;
    while (i > 0) {
      const prev = this.queue[i - 1]!;
      if (prev.at < event.at || (prev.at === event.at && prev.order < event.order)) break;
      i--;
    }
    this.queue.splice(i, 0, event);
    return event;
  }

  private delay(): number {
    const { minDelayUs, maxDelayUs } = this.faults;
    return minDelayUs + Math.floor(this.netRng.next() * (maxDelayUs - minDelayUs + 1));
  }

  private reachable(a: NodeId, b: NodeId): boolean {
    return !this.cut.has(`${a}-${b}`);
  }

  transmit(from: NodeId, to: NodeId, message: Message): void {
    const record: SentMessage = { at: this.now, from, to, message };
    this.sent.push(record);
    const rewritten = this.interceptor === null ? message : this.interceptor(record);
    if (rewritten === null) return;
    if (this.netRng.next() < this.faults.dropRate) return;
    const copies = this.netRng.next() < this.faults.duplicateRate ? 2 : 1;
    for (let c = 0; c < copies; c++) {
      this.schedule(this.delay(), () => {
        const target = this.nodes[to];
        if (target === undefined || target.crashed || !this.reachable(from, to)) return;
        target.replica.onMessage(rewritten);
      });
    }
  }

  /** Injects a message as if it came from the network (for forged-message tests). */
  inject(to: NodeId, message: Message): void {
    this.schedule(this.delay(), () => {
      const target = this.nodes[to];
      if (target !== undefined && !target.crashed) target.replica.onMessage(message);
    });
  }

  deliverRequest(to: NodeId, request: ClientRequest): void {
    this.schedule(this.delay(), () => {
      const target = this.nodes[to];
      if (target === undefined || target.crashed) return;
      target.replica.onClientRequest(request);
    });
  }

  deliverReply(reply: ClientReply): void {
    this.schedule(this.delay(), () => this.clients.get(reply.clientId)?.client.onReply(reply));
  }

  partition(group: readonly NodeId[]): void {
    for (const a of group) for (const b of this.replicaIds) if (!group.includes(b)) {
      this.cut.add(`${a}-${b}`);
      this.cut.add(`${b}-${a}`);
    }
  }

  heal(): void {
    this.cut.clear();
  }

  crash(id: NodeId): void {
    this.node(id).crash();
  }

  restart(id: NodeId, { amnesia = false }: { amnesia?: boolean } = {}): void {
    const node = this.node(id);
    node.crashed = false;
    if (amnesia) node.loseState();
    node.replica.start();
  }

  /** Runs events until `until` (virtual µs) or until the predicate holds; returns whether it held. */
  runUntil(predicate: () => boolean, maxUs: number): boolean {
    const deadline = this.now + maxUs;
    while (!predicate()) {
      const event = this.queue.shift();
      if (event === undefined || event.at > deadline) {
        if (event !== undefined) this.queue.unshift(event);
        this.now = Math.max(this.now, deadline);
        return predicate();
      }
      if (event.cancelled) continue;
      this.now = event.at;
      event.run();
    }
    return true;
  }

  runFor(us: number): void {
    this.runUntil(() => false, us);
  }

  completed(clientId: number, count: number): boolean {
    return (this.clients.get(clientId)?.results.size ?? 0) >= count;
  }

  sentOfType(type: string): SentMessage[] {
    return this.sent.filter((s) => s.message.type === type);
  }
}
