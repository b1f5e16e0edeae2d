/**
 * The EPaxos client: any replica can lead a command, so it sends to one (clientId mod n, which
 * spreads clients over the command leaders) and, on timeout, resends the same request id to the
 * next replica. The first reply for a request id completes it; replicas dedupe retransmits.
 */
import type { ClientEnv, ClientReply, ClientRequest, ProtocolClient, ProtocolOptions, TimerHandle } from '../protocol.ts';

/** A command waits for its dependencies before it executes, so give it more than one timeout. */
const CLIENT_TIMEOUT_FACTOR = 3;
const MAX_BACKOFF = 4;

interface Outstanding {
  readonly request: ClientRequest;
  target: number;
  attempts: number;
  timer: TimerHandle;
}

export class EpaxosClient implements ProtocolClient {
  private readonly outstanding = new Map<number, Outstanding>();

  constructor(
    private readonly env: ClientEnv,
    private readonly options: ProtocolOptions,
  ) {}

  submit(request: ClientRequest): void {
    if (this.outstanding.has(request.requestId)) return;
    const n = this.env.replicas.length;
    const target = this.env.clientId % n;
    const entry: Outstanding = { request, target, attempts: 0, timer: this.arm(request.requestId, 0) };
    this.outstanding.set(request.requestId, entry);
    this.env.sendRequest(this.replicaAt(target), request);
  }

  onReply(reply: ClientReply): void {
    if (reply.clientId !== this.env.clientId) return;
    const entry = this.outstanding.get(reply.requestId);
    if (entry === undefined) return;
    this.outstanding.delete(reply.requestId);
    this.env.cancelTimer(entry.timer);
    this.env.complete(reply.requestId, reply.result);
  }

  onTimer(name: string, data: unknown): void {
    if (name !== 'retry') return;
    const requestId = (data as { requestId?: unknown } | undefined)?.requestId;
    if (typeof requestId !== 'number') return;
    const entry = this.outstanding.get(requestId);
    if (entry === undefined) return;
    entry.attempts++;
    this.env.retried();
    entry.target = (entry.target + 1) % this.env.replicas.length;
    entry.timer = this.arm(requestId, entry.attempts);
    this.env.sendRequest(this.replicaAt(entry.target), entry.request);
  }

  private arm(requestId: number, attempts: number): TimerHandle {
    const base = this.options.timeoutUs * CLIENT_TIMEOUT_FACTOR * Math.min(MAX_BACKOFF, 1 + attempts);
    // Jitter keeps a crowd of clients from retrying in lockstep.
    const afterUs = Math.round(base * (1 + 0.25 * this.env.rng.next()));
    return this.env.setTimer(afterUs, 'retry', { requestId });
  }

  private replicaAt(index: number): number {
    return this.env.replicas[index] ?? index;
  }
}
