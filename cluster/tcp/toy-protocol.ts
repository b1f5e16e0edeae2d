/**
 * A deliberately tiny protocol for testing the TCP harness on its own: node 0 orders every request
 * and broadcasts ORDER(seq, request); every node executes in sequence order and replies; a client
 * accepts f+1 matching replies. It is not fault tolerant beyond losing backups (no view change, no
 * state transfer) and it is not a consensus protocol: it exists so transport tests do not depend
 * on PBFT or EPaxos. It reports PBFT phases (the trace schema knows two protocols).
 */
import type {
  ClientReply,
  ClientRequest,
  Message,
  OperationResult,
  ProtocolDefinition,
  Replica,
  ReplicaEnv,
  ReplicaProgress,
  TimerHandle,
} from '../protocol.ts';

const PRIMARY = 0;

interface OrderMessage extends Message {
  readonly type: 'ORDER';
  readonly seq: number;
  readonly request: ClientRequest;
}

function isOrder(message: Message): message is OrderMessage {
  return message.type === 'ORDER' && typeof message.seq === 'number' && typeof message.request === 'object' && message.request !== null;
}

class ToyReplica implements Replica {
  private nextSeq = 1;
  private nextToExecute = 1;
  private readonly pending = new Map<number, ClientRequest>();
  /** Per client: the last executed request and its reply (exactly-once for retransmits). */
  private readonly lastReply = new Map<number, ClientReply>();
  private readonly ordered = new Map<number, number>();

  constructor(private readonly env: ReplicaEnv) {}

  start(): void {}

  onClientRequest(request: ClientRequest): void {
    const env = this.env;
    const cached = this.lastReply.get(request.clientId);
    if (cached !== undefined && cached.requestId === request.requestId) {
      env.replyToClient(cached);
      return;
    }
    if (env.id !== PRIMARY) return;
    if ((this.ordered.get(request.clientId) ?? 0) >= request.requestId) return;
    this.ordered.set(request.clientId, request.requestId);
    const seq = this.nextSeq++;
    env.trace({ phase: 'request', view: 0, seq, leader: PRIMARY, batchSize: 1 });
    env.broadcast(env.auth.sign({ type: 'ORDER', from: env.id, seq, request }));
    this.accept(seq, request);
  }

  onMessage(message: Message): void {
    if (message.from !== PRIMARY || !isOrder(message) || !this.env.auth.verify(message)) return;
    this.accept(message.seq, message.request);
  }

  onTimer(): void {}

  progressReport(): ReplicaProgress {
    const executed = this.nextToExecute - 1;
    return { view: 0, leader: PRIMARY, viewChanging: false, backlog: this.pending.size, oldestRequestUs: null, committed: executed, executed, logSize: this.pending.size };
  }

  private accept(seq: number, request: ClientRequest): void {
    if (seq < this.nextToExecute) return;
    this.pending.set(seq, request);
    for (let next = this.pending.get(this.nextToExecute); next !== undefined; next = this.pending.get(this.nextToExecute)) {
      this.pending.delete(this.nextToExecute);
      this.execute(this.nextToExecute++, next);
    }
  }

  private execute(seq: number, request: ClientRequest): void {
    const env = this.env;
    const result = env.stateMachine.execute(request.op, request);
    const reply: ClientReply = { clientId: request.clientId, requestId: request.requestId, result, replica: env.id, view: 0 };
    this.lastReply.set(request.clientId, reply);
    env.trace({ phase: 'execute', view: 0, seq, leader: PRIMARY, batchSize: 1 });
    env.replyToClient(reply);
  }
}

export const toyProtocol: ProtocolDefinition = {
  name: 'pbft',
  faultTolerance: (n) => Math.floor((n - 1) / 3),
  minReplicas: 1,
  createReplica: (env) => new ToyReplica(env),
  createClient(env, options) {
    let current: { requestId: number; votes: Map<string, Set<number>>; timer: TimerHandle } | null = null;
    const resend = (request: ClientRequest): TimerHandle => {
      env.sendRequest(PRIMARY, request);
      return env.setTimer(options.timeoutUs, 'retry', request);
    };
    return {
      submit(request) {
        current = { requestId: request.requestId, votes: new Map(), timer: resend(request) };
      },
      onReply(reply) {
        if (current === null || reply.requestId !== current.requestId) return;
        const key = JSON.stringify(reply.result);
        const voters = current.votes.get(key) ?? new Set<number>();
        voters.add(reply.replica);
        current.votes.set(key, voters);
        if (voters.size < env.f + 1) return;
        env.cancelTimer(current.timer);
        const requestId = current.requestId;
        current = null;
        env.complete(requestId, reply.result as OperationResult);
      },
      onTimer(_name, data) {
        const request = data as ClientRequest;
        if (current !== null && current.requestId === request.requestId) current.timer = resend(request);
      },
    };
  },
  byzantine: {
    isVote: () => false,
    equivocate: () => null,
    readsWallClock: false,
  },
};
