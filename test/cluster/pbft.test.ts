/**
 * PBFT as a pure protocol, run in a small deterministic harness defined below (virtual time, a
 * seeded delivery order, an in-memory key-value state machine), independent of cluster/sim/.
 */
import type { RejectReason } from '../../core/metrics-snapshot.ts';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createAuthenticator, createRequestSigner } from '../../cluster/auth.ts';
import { pbftProtocol, PbftReplica, PbftClient } from '../../cluster/pbft/index.ts';
import { computeNewViewPlan, validViewChange, verifyNewView, type QuorumContext } from '../../cluster/pbft/certificates.ts';
import { batchDigest } from '../../cluster/pbft/digest.ts';
import { MSG, parseNewView, type NewViewMsg, type PrePrepareMsg, type ViewChangeMsg } from '../../cluster/pbft/messages.ts';
import type {
  Authenticator,
  ClientReply,
  ClientRequest,
  Message,
  NodeId,
  Operation,
  OperationResult,
  ProtocolOptions,
  ReplicaEnv,
  StateMachine,
  StateSnapshot,
  Transition,
} from '../../cluster/protocol.ts';
import { createRng, type Rng } from '../../core/rng.ts';
import { ConfigError } from '../../core/errors.ts';

// ---- harness ------------------------------------------------------------------------------

class MemoryKv implements StateMachine {
  readonly data = new Map<string, string>();
  executions = 0;

  execute(op: Operation): OperationResult {
    this.executions++;
    const before = this.data.get(op.key) ?? null;
    if (op.kind === 'read') return { value: before, applied: true };
    if (op.kind === 'write') {
      this.data.set(op.key, op.value);
      return { value: op.value, applied: true };
    }
    if (before !== op.expected) return { value: before, applied: false };
    this.data.set(op.key, op.value);
    return { value: before, applied: true };
  }
  digest(): string {
    return createHash('sha256').update(JSON.stringify([...this.data].sort())).digest('hex');
  }
  snapshot(): StateSnapshot {
    return { entries: [...this.data].map(([k, v]) => [k, v] as const) };
  }
  restore(snapshot: StateSnapshot): void {
    this.data.clear();
    for (const [k, v] of snapshot.entries) this.data.set(k, v);
  }
}

type Event =
  | { kind: 'msg'; to: NodeId; message: Message }
  | { kind: 'timer'; node: NodeId; id: number; name: string; data: unknown }
  | { kind: 'request'; to: NodeId; request: ClientRequest }
  | { kind: 'reply'; reply: ClientReply }
  | { kind: 'client-timer'; clientId: number; id: number; name: string; data: unknown }
  | { kind: 'action'; run: () => void };

interface Scheduled {
  readonly at: number;
  readonly order: number;
  readonly event: Event;
}

/** Decides per message: deliver, drop, or deliver more than once. */
type NetworkFilter = (from: NodeId, to: NodeId, message: Message, sim: Sim) => 'deliver' | 'drop';

interface TraceEntry extends Transition {
  readonly node: NodeId;
  readonly at: number;
}

const OPTIONS: ProtocolOptions = { timeoutUs: 20_000, batchSizeMax: 4, checkpointInterval: 8, logWindow: 16 };

class Sim {
  now = 0;
  private order = 0;
  private queue: Scheduled[] = [];
  private nextTimerId = 1;
  private readonly cancelled = new Set<number>();
  readonly rng: Rng;
  readonly n: number;
  readonly f: number;
  readonly replicas: PbftReplica[] = [];
  readonly machines: MemoryKv[] = [];
  readonly auths: Authenticator[] = [];
  readonly traces: TraceEntry[] = [];
  /** Messages each replica refused, and why (the metrics snapshots' rejection counters). */
  readonly rejections: { node: number; reason: RejectReason }[] = [];
  readonly sent: Array<{ from: NodeId; to: NodeId; message: Message }> = [];
  readonly down = new Set<NodeId>();
  filter: NetworkFilter = () => 'deliver';
  dropRate = 0;
  duplicateRate = 0;
  /** Rewrites a message on its way out (a Byzantine sender). */
  outbound: ((from: NodeId, to: NodeId, message: Message) => Message | null) | null = null;
  readonly clients = new Map<number, { client: PbftClient; results: Map<number, OperationResult> }>();

  constructor(n: number, seed: number, readonly options: ProtocolOptions = OPTIONS) {
    this.rng = createRng(seed);
    this.n = n;
    this.f = pbftProtocol.faultTolerance(n);
    const ids = Array.from({ length: n }, (_, i) => i);
    for (const id of ids) {
      const auth = createAuthenticator('pbft-test', id, n);
      const sm = new MemoryKv();
      this.auths.push(auth);
      this.machines.push(sm);
      const replica = pbftProtocol.createReplica(
        {
          id,
          replicas: ids,
          f: this.f,
          rng: this.rng.fork(`replica-${id}`),
          nowUs: () => this.now,
          send: (to, message) => this.transmit(id, to, message),
          broadcast: (message) => {
            for (const to of ids) if (to !== id) this.transmit(id, to, message);
          },
          replyToClient: (reply) => {
            if (!this.down.has(id)) this.schedule(this.latency(), { kind: 'reply', reply });
          },
          setTimer: (afterUs, name, data) => {
            const timerId = this.nextTimerId++;
            this.schedule(afterUs, { kind: 'timer', node: id, id: timerId, name, data });
            return { id: timerId };
          },
          cancelTimer: (handle) => this.cancelled.add(handle.id),
          auth,
          stateMachine: sm,
          trace: (t) => {
            this.traces.push({ ...t, node: id, at: this.now });
            if (t.phase === 'execute') this.checkAgreement(t.seq, sm.digest(), id);
          },
          telemetry: { rejected: (reason) => this.rejections.push({ node: id, reason }), quorumCompleted: () => {}, voteReceived: () => {} },
        },
        options,
      ) as PbftReplica;
      this.replicas.push(replica);
    }
    for (const replica of this.replicas) replica.start();
  }

  private latency(): number {
    return 100 + this.rng.int(900);
  }

  private schedule(afterUs: number, event: Event): void {
    const item = { at: this.now + afterUs, order: this.order++, event };
    // Binary insertion keeps the queue sorted by (time, order): delivery order depends only on the seed.
    let lo = 0;
    let hi = this.queue.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const other = this.queue[mid]!;
      if (other.at < item.at || (other.at === item.at && other.order < item.order)) lo = mid + 1;
      else hi = mid;
    }
    this.queue.splice(lo, 0, item);
  }

  private transmit(from: NodeId, to: NodeId, original: Message): void {
    if (this.down.has(from) || this.down.has(to)) return;
    const message = this.outbound ? this.outbound(from, to, original) : original;
    if (!message) return;
    this.sent.push({ from, to, message });
    if (this.filter(from, to, message, this) === 'drop') return;
    if (this.dropRate > 0 && this.rng.next() < this.dropRate) return;
    const copies = this.duplicateRate > 0 && this.rng.next() < this.duplicateRate ? 2 : 1;
    // A JSON round trip, as on a real wire: no shared references between nodes.
    for (let i = 0; i < copies; i++) this.schedule(this.latency(), { kind: 'msg', to, message: JSON.parse(JSON.stringify(message)) });
  }

  /** Runs `run` at virtual time `atUs` (a fault starting or ending). */
  at(atUs: number, run: () => void): void {
    this.schedule(Math.max(0, atUs - this.now), { kind: 'action', run });
  }

  /** A crash: timers and in-flight messages are lost, durable state survives, start() again. */
  crash(node: NodeId, forUs: number): void {
    this.down.add(node);
    this.at(this.now + forUs, () => {
      this.down.delete(node);
      this.replicas[node]!.start();
    });
  }

  /** Delivers a message as if it came off the network (for forged-message tests). */
  inject(to: NodeId, message: Message): void {
    this.schedule(1, { kind: 'msg', to, message: JSON.parse(JSON.stringify(message)) });
  }

  addClient(clientId: number, ops: Operation[]): void {
    const results = new Map<number, OperationResult>();
    const signer = createRequestSigner('pbft-test', clientId);
    let next = 0;
    const submitNext = (): void => {
      const op = ops[next];
      if (op) client.submit(signer.sign({ clientId, requestId: ++next, op }));
    };
    const client = pbftProtocol.createClient(
      {
        clientId,
        replicas: this.replicas.map((_, i) => i),
        f: this.f,
        rng: this.rng.fork(`client-${clientId}`),
        nowUs: () => this.now,
        sendRequest: (to, request) => this.schedule(this.latency(), { kind: 'request', to, request }),
        setTimer: (afterUs, name, data) => {
          const timerId = this.nextTimerId++;
          this.schedule(afterUs, { kind: 'client-timer', clientId, id: timerId, name, data });
          return { id: timerId };
        },
        cancelTimer: (handle) => this.cancelled.add(handle.id),
        complete: (requestId, result) => {
          expect(results.has(requestId)).toBe(false);
          results.set(requestId, result);
          submitNext();
        },
        retried: () => {},
      },
      this.options,
    ) as PbftClient;
    this.clients.set(clientId, { client, results });
    submitNext();
  }

  /** Every replica's state after executing seq n is the same: no two replicas decided differently. */
  readonly stateAfter = new Map<number, { digest: string; node: NodeId }>();
  private checkAgreement(seq: number, digest: string, node: NodeId): void {
    const seen = this.stateAfter.get(seq);
    if (!seen) this.stateAfter.set(seq, { digest, node });
    else expect(digest, `state after seq ${seq} at replica ${node} vs ${seen.node}`).toBe(seen.digest);
  }

  allClientsDone(expected: number): boolean {
    for (const { results } of this.clients.values()) if (results.size < expected) return false;
    return true;
  }

  /** Runs until `done` holds or virtual time passes `limitUs`; returns whether `done` held. */
  run(done: () => boolean, limitUs = 20_000_000): boolean {
    while (this.queue.length > 0) {
      if (done()) return true;
      const item = this.queue.shift()!;
      if (item.at > limitUs) return false;
      this.now = item.at;
      this.deliver(item.event);
    }
    return done();
  }

  private deliver(event: Event): void {
    switch (event.kind) {
      case 'msg':
        if (!this.down.has(event.to)) this.replicas[event.to]!.onMessage(event.message);
        return;
      case 'timer':
        if (this.cancelled.delete(event.id) || this.down.has(event.node)) return;
        this.replicas[event.node]!.onTimer(event.name, event.data);
        return;
      case 'request':
        if (!this.down.has(event.to)) this.replicas[event.to]!.onClientRequest(event.request);
        return;
      case 'reply':
        this.clients.get(event.reply.clientId)?.client.onReply(event.reply);
        return;
      case 'client-timer':
        if (this.cancelled.delete(event.id)) return;
        this.clients.get(event.clientId)?.client.onTimer(event.name, event.data);
        return;
      case 'action':
        event.run();
    }
  }

  /** Replicas that executed the same prefix hold the same state. */
  expectConsistent(nodes: readonly NodeId[] = this.replicas.map((_, i) => i)): void {
    const byExecuted = new Map<number, string>();
    for (const id of nodes) {
      const { lastExecuted } = this.replicas[id]!.inspect();
      const digest = this.machines[id]!.digest();
      const seen = byExecuted.get(lastExecuted);
      if (seen === undefined) byExecuted.set(lastExecuted, digest);
      else expect(digest, `replica ${id} at seq ${lastExecuted}`).toBe(seen);
    }
  }

  executedAt(node: NodeId, seq: number): TraceEntry[] {
    return this.traces.filter((t) => t.node === node && t.phase === 'execute' && t.seq === seq);
  }
}

/** Each client writes its own key then reads it back, and all of them cas a shared counter key. */
function workload(clientId: number, count: number): Operation[] {
  const ops: Operation[] = [];
  for (let i = 1; i <= count; i++) {
    if (i % 3 === 0) ops.push({ kind: 'read', key: `k${clientId}` });
    else if (i % 5 === 0) ops.push({ kind: 'cas', key: 'shared', expected: null, value: `c${clientId}` });
    else ops.push({ kind: 'write', key: `k${clientId}`, value: `v${clientId}-${i}` });
  }
  return ops;
}

function runWorkload(sim: Sim, clients: number, opsPerClient: number, limitUs?: number): boolean {
  for (let c = 1; c <= clients; c++) sim.addClient(c, workload(c, opsPerClient));
  return sim.run(() => sim.allClientsDone(opsPerClient), limitUs);
}

/** Reads must see the client's own latest write (a linearizable store, one writer per key). */
function expectReadsSeeOwnWrites(sim: Sim, opsPerClient: number): void {
  for (const [clientId, { results }] of sim.clients) {
    const ops = workload(clientId, opsPerClient);
    let last: string | null = null;
    ops.forEach((op, index) => {
      const result = results.get(index + 1);
      expect(result, `client ${clientId} request ${index + 1}`).toBeDefined();
      if (op.kind === 'write') last = op.value;
      if (op.kind === 'read') expect(result!.value).toBe(last);
    });
  }
}

// ---- tests --------------------------------------------------------------------------------

describe('pbft normal case', () => {
  it('commits and executes every request with 4 replicas', () => {
    const sim = new Sim(4, 1);
    expect(runWorkload(sim, 3, 20)).toBe(true);
    expectReadsSeeOwnWrites(sim, 20);
    sim.run(() => sim.replicas.every((r) => r.inspect().lastExecuted === sim.replicas[0]!.inspect().lastExecuted), 40_000_000);
    sim.expectConsistent();
    const phases = new Set(sim.traces.map((t) => t.phase));
    for (const phase of ['request', 'pre_prepare', 'prepare', 'commit', 'execute', 'reply', 'checkpoint']) expect(phases).toContain(phase);
    expect(sim.replicas.every((r) => r.inspect().view === 0)).toBe(true);
    // Exactly one shared cas applied cluster-wide, whatever the interleaving.
    const casApplied = [...sim.clients.values()].flatMap(({ results }) => [...results.entries()].filter(([id]) => id % 5 === 0 && id % 3 !== 0).map(([, r]) => r.applied));
    expect(casApplied.filter(Boolean).length).toBe(1);
    const execute = sim.traces.find((t) => t.phase === 'execute' && t.batchSize! > 0);
    expect(execute?.latencyUs).toBeGreaterThan(0);
  });

  it('commits with 7 replicas (f = 2)', () => {
    const sim = new Sim(7, 2);
    expect(sim.f).toBe(2);
    expect(runWorkload(sim, 4, 12)).toBe(true);
    expectReadsSeeOwnWrites(sim, 12);
    sim.expectConsistent();
  });

  it('batches requests that queue up while pre-prepares are in flight', () => {
    const sim = new Sim(4, 3);
    expect(runWorkload(sim, 12, 5)).toBe(true);
    const batches = sim.traces.filter((t) => t.node === 0 && t.phase === 'pre_prepare').map((t) => t.batchSize ?? 0);
    expect(Math.max(...batches)).toBeGreaterThan(1);
    expect(Math.max(...batches)).toBeLessThanOrEqual(OPTIONS.batchSizeMax);
  });

  it('executes a retransmitted request once and re-sends the cached reply', () => {
    const sim = new Sim(4, 4);
    sim.addClient(1, [{ kind: 'cas', key: 'x', expected: null, value: 'first' }]);
    expect(sim.run(() => sim.allClientsDone(1))).toBe(true);
    sim.run(() => sim.replicas.every((r) => r.inspect().lastExecuted >= 1));
    sim.run(() => false, sim.now + 100_000); // late replies to the first send land first
    const executionsBefore = sim.machines.map((m) => m.executions);
    expect(executionsBefore).toEqual([1, 1, 1, 1]);
    const replies: ClientReply[] = [];
    const original = sim.clients.get(1)!.client;
    sim.clients.set(1, { client: { ...original, onReply: (r: ClientReply) => replies.push(r) } as unknown as PbftClient, results: new Map() });
    const again = createRequestSigner('pbft-test', 1).sign({ clientId: 1, requestId: 1, op: { kind: 'cas', key: 'x', expected: null, value: 'first' } });
    for (let i = 0; i < 4; i++) for (const replica of sim.replicas) replica.onClientRequest(again);
    sim.run(() => false, sim.now + 1_000_000);
    expect(sim.machines.map((m) => m.executions)).toEqual([1, 1, 1, 1]);
    expect(replies.length).toBe(16);
    expect(replies.every((r) => r.result.applied && r.result.value === null)).toBe(true);
  });

  it('survives message loss, duplication and reordering', () => {
    const sim = new Sim(4, 5);
    sim.dropRate = 0.1;
    sim.duplicateRate = 0.1;
    expect(runWorkload(sim, 3, 15, 60_000_000)).toBe(true);
    expectReadsSeeOwnWrites(sim, 15);
    sim.expectConsistent();
  });

  it('rejects invalid options with a ConfigError', () => {
    const sim = new Sim(4, 6);
    const env = {} as ReplicaEnv;
    expect(() => pbftProtocol.createReplica(env, { ...OPTIONS, logWindow: 4 })).toThrow(ConfigError);
    expect(() => pbftProtocol.createReplica(env, { ...OPTIONS, batchSizeMax: 0 })).toThrow(ConfigError);
    expect(sim.f).toBe(1);
    expect(pbftProtocol.faultTolerance(4)).toBe(1);
    expect(pbftProtocol.faultTolerance(10)).toBe(3);
  });
});

describe('pbft authentication', () => {
  it('ignores messages with a wrong MAC or from an illegitimate sender', () => {
    const sim = new Sim(4, 7);
    const digest = batchDigest([{ clientId: 9, requestId: 1, op: { kind: 'write', key: 'evil', value: 'x' } }]);
    const batch = [{ clientId: 9, requestId: 1, op: { kind: 'write', key: 'evil', value: 'x' } }];
    // A backup (1) cannot pre-prepare in view 0 even with its own valid MAC.
    sim.inject(2, sim.auths[1]!.sign({ type: MSG.prePrepare, from: 1, view: 0, seq: 1, digest, batch }));
    // Node 3 signs with its own key while claiming to be the primary.
    const forged = { ...sim.auths[3]!.sign({ type: MSG.prePrepare, from: 3, view: 0, seq: 1, digest, batch }), from: 0 };
    sim.inject(2, forged);
    // Forged votes: commits and prepares "from" everyone, MAC'd by node 3.
    for (const from of [0, 1]) {
      sim.inject(2, { ...sim.auths[3]!.sign({ type: MSG.prepare, from: 3, view: 0, seq: 1, digest }), from });
      sim.inject(2, { ...sim.auths[3]!.sign({ type: MSG.commit, from: 3, view: 0, seq: 1, digest }), from });
    }
    // A correctly signed message tampered with after signing.
    sim.inject(2, { ...sim.auths[0]!.sign({ type: MSG.prePrepare, from: 0, view: 0, seq: 1, digest: batchDigest([]), batch: [] }), batch });
    sim.run(() => false, 1_000_000);
    expect(sim.sent.filter((s) => s.from === 2)).toEqual([]);
    expect(sim.traces.filter((t) => t.node === 2)).toEqual([]);
    expect(sim.machines[2]!.data.size).toBe(0);
  });

  const evilOp: Operation = { kind: 'write', key: 'evil', value: 'x' };
  const wire = <T,>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

  it('drops client requests without their client\'s MAC: unsigned, signed by another client, or altered', () => {
    const sim = new Sim(4, 11);
    const unsigned: ClientRequest = { clientId: 1, requestId: 1, op: evilOp };
    const otherClient = { ...createRequestSigner('pbft-test', 2).sign({ clientId: 2, requestId: 1, op: evilOp }), clientId: 1 };
    const altered = { ...createRequestSigner('pbft-test', 1).sign({ clientId: 1, requestId: 1, op: { kind: 'read', key: 'evil' } }), op: evilOp };
    const otherCluster = createRequestSigner('another-cluster', 1).sign({ clientId: 1, requestId: 1, op: evilOp });
    for (const forged of [unsigned, otherClient, altered, otherCluster]) {
      for (const replica of sim.replicas) replica.onClientRequest(wire(forged));
    }
    sim.run(() => false, 2_000_000);
    expect(sim.sent).toEqual([]);
    expect(sim.traces).toEqual([]);
    expect(sim.machines.map((m) => m.executions)).toEqual([0, 0, 0, 0]);
    // The same request, signed by its client, goes through.
    const genuine = createRequestSigner('pbft-test', 1).sign({ clientId: 1, requestId: 1, op: evilOp });
    for (const replica of sim.replicas) replica.onClientRequest(wire(genuine));
    sim.run(() => sim.replicas.every((r) => r.inspect().lastExecuted >= 1), 4_000_000);
    expect(sim.machines.map((m) => m.data.get('evil'))).toEqual(['x', 'x', 'x', 'x']);
  });

  it('backups refuse a pre-prepare in which the primary ordered a request no client sent', () => {
    const run = (batch: ClientRequest[]) => {
      const sim = new Sim(4, 12);
      // The primary (0) signs the pre-prepare itself: only the request inside is forged.
      for (const to of [1, 2, 3]) sim.inject(to, sim.auths[0]!.sign({ type: MSG.prePrepare, from: 0, view: 0, seq: 1, digest: batchDigest(batch), batch }));
      sim.run(() => false, 1_000_000);
      return new Set(sim.sent.filter((m) => m.message.type === MSG.prepare).map((m) => m.from)).size;
    };
    const signed = createRequestSigner('pbft-test', 5).sign({ clientId: 5, requestId: 1, op: evilOp });
    expect(run([wire(signed)])).toBe(3); // control: every backup prepares an authentic request
    expect(run([{ clientId: 5, requestId: 1, op: evilOp }])).toBe(0);
    expect(run([wire(signed), { ...wire(signed), clientId: 6, mac: wire(signed).mac! }])).toBe(0);
  });

  it('the primary ignores a forwarded request whose client MAC is missing', () => {
    const sim = new Sim(4, 13);
    sim.inject(0, sim.auths[1]!.sign({ type: MSG.request, from: 1, request: { clientId: 3, requestId: 1, op: evilOp } }));
    sim.run(() => false, 1_000_000);
    expect(sim.sent).toEqual([]);
    const forwarded = createRequestSigner('pbft-test', 3).sign({ clientId: 3, requestId: 1, op: evilOp });
    sim.inject(0, sim.auths[1]!.sign({ type: MSG.request, from: 1, request: forwarded }));
    sim.run(() => false, 1_500_000);
    expect(sim.sent.some((m) => m.message.type === MSG.prePrepare)).toBe(true);
  });
});

describe('pbft view change', () => {
  it('replaces a silent primary and completes every request', () => {
    const sim = new Sim(4, 8);
    sim.down.add(0);
    expect(runWorkload(sim, 3, 10)).toBe(true);
    expectReadsSeeOwnWrites(sim, 10);
    sim.expectConsistent([1, 2, 3]);
    expect(sim.replicas.slice(1).every((r) => r.inspect().view >= 1)).toBe(true);
    expect(sim.traces.some((t) => t.phase === 'view_change')).toBe(true);
    expect(sim.traces.some((t) => t.phase === 'new_view' && t.leader === 1)).toBe(true);
    // Sequence numbers continue: nothing restarts at 1 after the view change.
    const seqs = sim.traces.filter((t) => t.node === 1 && t.phase === 'execute').map((t) => t.seq);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
  });

  it('keeps a prepared-but-uncommitted request at its sequence number across the view change', () => {
    const sim = new Sim(4, 9);
    // Every COMMIT of view 0 is lost: requests prepare but never commit in view 0.
    sim.filter = (_from, _to, m) => (m.type === MSG.commit && m.view === 0 ? 'drop' : 'deliver');
    sim.addClient(1, [{ kind: 'write', key: 'a', value: 'A' }]);
    sim.run(() => sim.replicas.slice(1).every((r) => sim.traces.some((t) => t.phase === 'prepare' && t.seq === 1)), 1_000_000);
    const original = sim.sent.find((s) => s.message.type === MSG.prePrepare)!.message as PrePrepareMsg;
    expect(original.seq).toBe(1);
    // Now the old primary goes silent and another client's request is waiting at the backups.
    sim.down.add(0);
    sim.addClient(2, [{ kind: 'write', key: 'b', value: 'B' }]);
    expect(sim.run(() => sim.allClientsDone(1))).toBe(true);
    const newView = sim.sent.find((s) => s.message.type === MSG.newView)!.message as NewViewMsg;
    expect(newView.prePrepares[0]!.seq).toBe(1);
    expect(newView.prePrepares[0]!.digest).toBe(original.digest);
    for (const node of [1, 2, 3]) {
      const [exec] = sim.executedAt(node, 1);
      expect(exec?.view).toBe(1);
    }
    expect(sim.machines[1]!.data.get('a')).toBe('A');
    expect(sim.machines[1]!.data.get('b')).toBe('B');
    sim.expectConsistent([1, 2, 3]);
  });

  it('rejects a NEW-VIEW whose O was tampered with, then moves on to an honest primary', () => {
    const sim = new Sim(4, 10);
    sim.filter = (_from, _to, m) => (m.type === MSG.commit && m.view === 0 ? 'drop' : 'deliver');
    sim.addClient(1, [{ kind: 'write', key: 'a', value: 'A' }]);
    sim.run(() => sim.traces.filter((t) => t.phase === 'prepare' && t.seq === 1).length >= 3, 1_000_000);
    sim.down.add(0);
    // The next primary (1) is Byzantine: it replaces the prepared request by a null request in O.
    const tampered: NewViewMsg[] = [];
    sim.outbound = (from, _to, m) => {
      if (from !== 1 || m.type !== MSG.newView) return m;
      const nv = m as NewViewMsg;
      const prePrepares = nv.prePrepares.map((pp) => sim.auths[1]!.sign({ ...pp, batch: [], digest: batchDigest([]), mac: undefined }) as PrePrepareMsg);
      const forgedNv = sim.auths[1]!.sign({ ...nv, prePrepares, mac: undefined }) as NewViewMsg;
      tampered.push(forgedNv);
      return forgedNv;
    };
    expect(sim.run(() => sim.allClientsDone(1))).toBe(true);
    expect(tampered.length).toBeGreaterThan(0);
    // No honest replica entered view 1; all of them executed the prepared request at seq 1.
    expect(sim.traces.some((t) => t.phase === 'new_view' && t.view === 1 && t.node !== 1)).toBe(false);
    for (const node of [2, 3]) {
      expect(sim.replicas[node]!.inspect().view).toBeGreaterThanOrEqual(2);
      expect(sim.executedAt(node, 1)[0]?.batchSize).toBe(1);
    }
    expect(sim.machines[2]!.data.get('a')).toBe('A');
  });
});

describe('pbft certificates', () => {
  /** Drives a real view change and returns the NEW-VIEW it produced. */
  function captureNewView(): { sim: Sim; nv: NewViewMsg; ctx: QuorumContext } {
    const sim = new Sim(4, 11);
    sim.filter = (_from, _to, m) => (m.type === MSG.commit && m.view === 0 ? 'drop' : 'deliver');
    sim.addClient(1, [{ kind: 'write', key: 'a', value: 'A' }]);
    sim.run(() => sim.traces.filter((t) => t.phase === 'prepare' && t.seq === 1).length >= 3, 1_000_000);
    sim.down.add(0);
    sim.run(() => sim.sent.some((s) => s.message.type === MSG.newView));
    const nv = parseNewView(sim.sent.find((s) => s.message.type === MSG.newView)!.message)!;
    const ctx: QuorumContext = { n: 4, f: 1, auth: createAuthenticator('pbft-test', 2, 4), logWindow: OPTIONS.logWindow };
    return { sim, nv, ctx };
  }

  it('accepts the genuine NEW-VIEW and recomputes its O', () => {
    const { nv, ctx } = captureNewView();
    const plan = verifyNewView(ctx, nv);
    expect(plan).not.toBeNull();
    expect(plan!.entries.map((e) => e.seq)).toEqual([1]);
    expect(plan!.entries[0]!.batch.length).toBe(1);
  });

  it('rejects tampered, gappy, under-quorum or badly certified NEW-VIEWs', () => {
    const { sim, nv, ctx } = captureNewView();
    const primary = sim.auths[nv.from]!;
    const resign = (m: Record<string, unknown>): NewViewMsg => primary.sign({ ...m, mac: undefined } as unknown as Message) as NewViewMsg;
    // O dropped entirely (gap at seq 1).
    expect(verifyNewView(ctx, resign({ ...nv, prePrepares: [] }))).toBeNull();
    // Only 2f VIEW-CHANGEs.
    expect(verifyNewView(ctx, resign({ ...nv, viewChanges: nv.viewChanges.slice(0, 2) }))).toBeNull();
    // A duplicated VIEW-CHANGE does not count twice.
    expect(verifyNewView(ctx, resign({ ...nv, viewChanges: [nv.viewChanges[0], nv.viewChanges[0], nv.viewChanges[1]] }))).toBeNull();
    // The NEW-VIEW itself with a bad MAC.
    expect(verifyNewView(ctx, { ...nv, newView: nv.newView })).not.toBeNull();
    expect(verifyNewView(ctx, { ...nv, mac: 'AAAA' })).toBeNull();
    // A VIEW-CHANGE inside whose prepared certificate lost a prepare.
    const vcs = nv.viewChanges.map((vc) => ({ ...vc }));
    const withCert = vcs.findIndex((vc) => vc.prepared.length > 0);
    const vc = vcs[withCert]!;
    const broken = { ...vc, prepared: [{ ...vc.prepared[0]!, prepares: vc.prepared[0]!.prepares.slice(1) }] };
    vcs[withCert] = broken;
    expect(verifyNewView(ctx, resign({ ...nv, viewChanges: vcs }))).toBeNull();
  });

  it('drops a VIEW-CHANGE carrying forged certificates without affecting valid ones', () => {
    const { nv, ctx, sim } = captureNewView();
    const valid = nv.viewChanges.filter((vc) => vc.prepared.length > 0);
    expect(valid.length).toBeGreaterThan(0);
    const honest = valid[0]!;
    expect(validViewChange(ctx, honest)).not.toBeNull();
    // Byzantine node 3 claims a prepared certificate for a different batch at seq 1, with
    // prepares it forged for nodes 1 and 2.
    const batch = [{ clientId: 7, requestId: 1, op: { kind: 'write' as const, key: 'a', value: 'EVIL' } }];
    const pp = { ...honest.prepared[0]!.prePrepare, batch, digest: batchDigest(batch) };
    const prepares = [1, 2].map((from) => ({ ...sim.auths[3]!.sign({ type: MSG.prepare, from: 3, view: 0, seq: 1, digest: pp.digest }), from }));
    const forged = sim.auths[3]!.sign({ type: MSG.viewChange, from: 3, newView: honest.newView, stableSeq: 0, checkpointProof: [], prepared: [{ prePrepare: pp, prepares }] });
    expect(validViewChange(ctx, forged)).toBeNull();
    // Even if a primary included it, O computed from the valid ones keeps the honest batch.
    const plan = computeNewViewPlan(nv.viewChanges as ViewChangeMsg[]);
    expect(plan.entries[0]!.digest).toBe(honest.prepared[0]!.prePrepare.digest);
  });
});

describe('pbft checkpoints and state transfer', () => {
  it('garbage-collects the log behind stable checkpoints', () => {
    const sim = new Sim(4, 12);
    let maxLog = 0;
    for (let c = 1; c <= 3; c++) sim.addClient(c, workload(c, 40));
    const done = sim.run(() => {
      for (const r of sim.replicas) maxLog = Math.max(maxLog, r.inspect().logSize);
      return sim.allClientsDone(40);
    });
    expect(done).toBe(true);
    const status = sim.replicas[0]!.inspect();
    expect(status.lastExecuted).toBeGreaterThan(3 * OPTIONS.logWindow);
    expect(status.lowWater).toBeGreaterThan(status.lastExecuted - 2 * OPTIONS.checkpointInterval);
    // Slots, certificates and decided batches for at most one window, plus a few checkpoints.
    expect(maxLog).toBeLessThanOrEqual(3 * OPTIONS.logWindow + 4);
    expect(sim.traces.filter((t) => t.node === 0 && t.phase === 'checkpoint').length).toBeGreaterThan(3);
  });

  it('brings a replica that was cut off back up to date by state transfer', () => {
    const sim = new Sim(4, 13);
    sim.down.add(3);
    for (let c = 1; c <= 3; c++) sim.addClient(c, workload(c, 40));
    expect(sim.run(() => sim.replicas[0]!.inspect().lowWater >= 3 * OPTIONS.logWindow)).toBe(true);
    expect(sim.replicas[3]!.inspect().lastExecuted).toBe(0);
    sim.down.delete(3);
    expect(sim.run(() => sim.allClientsDone(40))).toBe(true);
    const caughtUp = sim.run(() => sim.replicas[3]!.inspect().lastExecuted === sim.replicas[0]!.inspect().lastExecuted, sim.now + 5_000_000);
    expect(caughtUp).toBe(true);
    expect(sim.traces.some((t) => t.node === 3 && t.phase === 'state_transfer')).toBe(true);
    sim.expectConsistent();
    expect(sim.machines[3]!.digest()).toBe(sim.machines[0]!.digest());
  });
});

describe('pbft under chaos', () => {
  const seeds = Number(process.env.LATTICE_PBFT_SEEDS ?? 12);
  it(`stays safe and live over ${seeds} seeds of loss, duplication, crashes and partitions`, { timeout: Math.max(60_000, seeds * 1_000) }, () => {
    const first = Number(process.env.LATTICE_PBFT_FIRST_SEED ?? 100);
    for (let seed = first; seed < first + seeds; seed++) {
      const n = seed % 3 === 0 ? 7 : 4;
      const sim = new Sim(n, seed);
      const plan = createRng(seed * 7919);
      sim.dropRate = 0.02 + plan.next() * 0.15;
      sim.duplicateRate = plan.next() * 0.15;
      // Up to f replicas faulty at any time, the primary included: crashes with restarts and
      // isolation by partition.
      const isolated = new Set<NodeId>();
      sim.filter = (from, to) => (isolated.has(from) || isolated.has(to) ? 'drop' : 'deliver');
      for (let k = 0; k < 4; k++) {
        // Timeouts are 20 ms and a clean run takes about 50 ms: faults land mid-run and last
        // from one to several timeouts.
        const start = plan.int(150_000);
        const node = k === 0 ? 0 : plan.int(n);
        const length = 20_000 + plan.int(200_000);
        const crash = plan.next() < 0.5;
        sim.at(start, () => {
          if (sim.down.has(node) || isolated.has(node) || sim.down.size + isolated.size >= sim.f) return;
          if (crash) return sim.crash(node, length);
          isolated.add(node);
          sim.at(start + length, () => isolated.delete(node));
        });
      }
      const opsPerClient = 25;
      const ok = runWorkload(sim, 3, opsPerClient, 120_000_000);
      if (!ok && process.env.PBFT_STATS) {
        console.log(sim.replicas.map((r) => JSON.stringify(r.inspect())).join('\n'));
        console.log([...sim.clients].map(([id, c]) => `${id}: ${c.results.size}`).join(' '), 'down', [...sim.down]);
        console.log(sim.traces.filter((t) => ['view_change', 'new_view', 'state_transfer'].includes(t.phase)).map((t) => `${t.at} n${t.node} ${t.phase} v${t.view} s${t.seq}`).join('\n'));
      }
      expect(ok, `seed ${seed}: all requests complete (views ${sim.replicas.map((r) => r.inspect().view).join(',')})`).toBe(true);
      expectReadsSeeOwnWrites(sim, opsPerClient);
      sim.expectConsistent();
      if (process.env.PBFT_STATS) console.log(seed, n, sim.now, ['view_change', 'new_view', 'state_transfer', 'checkpoint'].map((p) => `${p}=${sim.traces.filter((t) => t.phase === p).length}`).join(' '), sim.replicas.map((r) => r.inspect().view).join(','));
    }
  });
});

describe('pbft byzantine hooks', () => {
  it('classifies votes and makes a two-faced pre-prepare', () => {
    const hooks = pbftProtocol.byzantine;
    expect(hooks.isVote({ type: MSG.prepare, from: 1 })).toBe(true);
    expect(hooks.isVote({ type: MSG.viewChange, from: 1 })).toBe(true);
    expect(hooks.isVote({ type: MSG.prePrepare, from: 1 })).toBe(false);
    const auth = createAuthenticator('pbft-test', 0, 4);
    const batch = [1, 2].map((requestId) => ({ clientId: 1, requestId, op: { kind: 'read' as const, key: 'k' } }));
    const pp = auth.sign({ type: MSG.prePrepare, from: 0, view: 0, seq: 1, digest: batchDigest(batch), batch });
    const rng = createRng(1);
    const variants = Array.from({ length: 20 }, (_, to) => hooks.equivocate(pp, to, rng, auth)).filter((v) => v !== null);
    expect(variants.length).toBeGreaterThan(3);
    expect(variants.length).toBeLessThan(17);
    for (const v of variants) {
      expect(v.digest).not.toBe(pp.digest);
      expect(v.digest).toBe(batchDigest(v.batch as ClientRequest[]));
      expect(createAuthenticator('pbft-test', 2, 4).verify(v)).toBe(true);
    }
  });

  it('stays safe and live under an equivocating primary', () => {
    const sim = new Sim(4, 14);
    const rng = createRng(99);
    sim.outbound = (from, to, m) => (from === 0 ? (pbftProtocol.byzantine.equivocate(m, to, rng, sim.auths[0]!) ?? m) : m);
    expect(runWorkload(sim, 3, 10)).toBe(true);
    expectReadsSeeOwnWrites(sim, 10);
    sim.expectConsistent([1, 2, 3]);
  });
});
