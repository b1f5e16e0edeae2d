/**
 * A deliberately tiny protocol for testing the harness itself (never for production): node 0 is
 * a fixed sequencer that orders requests, executes them, replies, and broadcasts the order; the
 * others execute in sequence order and acknowledge (the "votes"). No fault tolerance beyond
 * retransmission: it exists so the simulator, network and chaos engine can be tested without
 * depending on PBFT or EPaxos.
 */
import type {
  ClientReply,
  ClientRequest,
  Message,
  ProtocolClient,
  ProtocolDefinition,
  Replica,
  ReplicaEnv,
  ReplicaProgress,
  ClientEnv,
  OperationResult,
} from '../protocol.ts';

const LEADER = 0;

class ToyReplica implements Replica {
  private nextSeq = 1;
  private executedUpTo = 0;
  private readonly pending = new Map<number, ClientRequest>();
  private readonly lastReply = new Map<number, { requestId: number; result: OperationResult }>();

  constructor(private readonly env: ReplicaEnv) {}

  start(): void {
    this.env.setTimer(50_000, 'tick');
  }

  onTimer(name: string): void {
    if (name === 'tick') this.env.setTimer(50_000, 'tick');
  }

  progressReport(): ReplicaProgress {
    return { view: 0, leader: LEADER, viewChanging: false, backlog: this.pending.size, oldestRequestUs: null, committed: this.executedUpTo, executed: this.executedUpTo, logSize: this.pending.size };
  }

  onClientRequest(request: ClientRequest): void {
    const env = this.env;
    if (env.id !== LEADER) return;
    const cached = this.lastReply.get(request.clientId);
    if (cached !== undefined && cached.requestId >= request.requestId) {
      if (cached.requestId === request.requestId) this.reply(request, cached.result);
      return;
    }
    const seq = this.nextSeq++;
    env.trace({ phase: 'request', view: 0, seq, leader: LEADER });
    env.broadcast(env.auth.sign({ type: 'order', from: env.id, seq, request }));
    env.trace({ phase: 'pre_prepare', view: 0, seq, leader: LEADER, batchSize: 1 });
    this.pending.set(seq, request);
    this.executeReady();
  }

  onMessage(message: Message): void {
    const env = this.env;
    if (!env.auth.verify(message)) return;
    if (message.type === 'order' && message.from === LEADER && env.id !== LEADER) {
      const seq = message.seq as number;
      if (seq <= this.executedUpTo || this.pending.has(seq)) return;
      this.pending.set(seq, message.request as ClientRequest);
      env.trace({ phase: 'prepare', view: 0, seq, leader: LEADER });
      env.send(LEADER, env.auth.sign({ type: 'ack', from: env.id, seq, digest: String(seq).padStart(8, '0') }));
      this.executeReady();
    } else if (message.type === 'ack' && env.id === LEADER) {
      env.trace({ phase: 'commit', view: 0, seq: message.seq as number, leader: LEADER });
    }
  }

  private executeReady(): void {
    for (;;) {
      const seq = this.executedUpTo + 1;
      const request = this.pending.get(seq);
      if (request === undefined) return;
      this.pending.delete(seq);
      this.executedUpTo = seq;
      const result = this.env.stateMachine.execute(request.op, request);
      this.lastReply.set(request.clientId, { requestId: request.requestId, result });
      this.env.trace({ phase: 'execute', view: 0, seq, leader: LEADER, batchSize: 1 });
      if (this.env.id === LEADER) this.reply(request, result);
    }
  }

  private reply(request: ClientRequest, result: OperationResult): void {
    this.env.replyToClient({ clientId: request.clientId, requestId: request.requestId, result, replica: this.env.id, view: 0 });
    this.env.trace({ phase: 'reply', view: 0, seq: this.executedUpTo, leader: LEADER });
  }
}

class ToyClient implements ProtocolClient {
  private current: ClientRequest | null = null;

  constructor(private readonly env: ClientEnv) {}

  submit(request: ClientRequest): void {
    this.current = request;
    this.env.sendRequest(LEADER, request);
    this.env.setTimer(20_000, 'retry', request.requestId);
  }

  onReply(reply: ClientReply): void {
    if (this.current === null || reply.requestId !== this.current.requestId) return;
    this.current = null;
    this.env.complete(reply.requestId, reply.result);
  }

  onTimer(_name: string, data: unknown): void {
    if (this.current === null || data !== this.current.requestId) return;
    this.env.sendRequest(LEADER, this.current);
    this.env.setTimer(20_000, 'retry', this.current.requestId);
  }
}

export const toyProtocol: ProtocolDefinition = {
  name: 'pbft',
  faultTolerance: (n) => Math.floor((n - 1) / 3),
  minReplicas: 3,
  createReplica: (env) => new ToyReplica(env),
  createClient: (env) => new ToyClient(env),
  byzantine: {
    // Only timers, which do nothing here: no decision reads the wall clock.
    readsWallClock: false,
    isVote: (message) => message.type === 'ack',
    equivocate(message, to, _rng, auth) {
      if (message.type !== 'order' || to % 2 === 0) return null;
      const request = message.request as ClientRequest;
      const { mac: _mac, ...unsigned } = message;
      return auth.sign({ ...unsigned, request: { ...request, op: { kind: 'write', key: request.op.key, value: 'equivocated' } } });
    },
  },
};
