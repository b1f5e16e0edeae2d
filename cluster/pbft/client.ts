/**
 * The PBFT client: one request outstanding at a time (so the replicas' per-client last-reply
 * cache is enough for exactly-once), sent to the believed primary; a result is final once f+1
 * distinct replicas report the same one, since at least one of them is correct. On timeout the
 * request is broadcast, which makes backups relay it and start suspecting the primary.
 */
import type { ClientEnv, ClientReply, ClientRequest, NodeId, ProtocolClient, ProtocolOptions, TimerHandle } from '../protocol.ts';
import { primaryOf } from './certificates.ts';

const TIMER_RETRY = 'pbft/client-retry';
/** Client retry intervals stop doubling here. */
const MAX_BACKOFF_EXPONENT = 4;

interface Outstanding {
  readonly request: ClientRequest;
  readonly replies: Map<NodeId, ClientReply>;
  attempts: number;
  timer: TimerHandle | null;
}

export class PbftClient implements ProtocolClient {
  private readonly env: ClientEnv;
  private readonly options: ProtocolOptions;
  private view = 0;
  private readonly queue: ClientRequest[] = [];
  private current: Outstanding | null = null;

  constructor(env: ClientEnv, options: ProtocolOptions) {
    this.env = env;
    this.options = options;
  }

  /** The view this client believes is current (learned from replies). */
  get believedView(): number {
    return this.view;
  }

  submit(request: ClientRequest): void {
    this.queue.push(request);
    if (!this.current) this.sendNext();
  }

  onReply(reply: ClientReply): void {
    const current = this.current;
    if (!current || reply.clientId !== current.request.clientId || reply.requestId !== current.request.requestId) return;
    if (!this.env.replicas.includes(reply.replica) || current.replies.has(reply.replica)) return;
    current.replies.set(reply.replica, reply);
    const key = resultKey(reply);
    const matching = [...current.replies.values()].filter((r) => resultKey(r) === key);
    if (matching.length < this.env.f + 1) return;
    this.learnView(matching);
    if (current.timer) this.env.cancelTimer(current.timer);
    this.current = null;
    this.env.complete(current.request.requestId, reply.result);
    this.sendNext();
  }

  onTimer(name: string, data: unknown): void {
    const current = this.current;
    const requestId = typeof data === 'object' && data !== null ? (data as { requestId?: unknown }).requestId : undefined;
    if (name !== TIMER_RETRY || !current || requestId !== current.request.requestId) return;
    current.timer = null;
    current.attempts++;
    this.env.retried();
    for (const replica of this.env.replicas) this.env.sendRequest(replica, current.request);
    this.armTimer(current);
  }

  private sendNext(): void {
    const request = this.queue.shift();
    if (!request) return;
    const outstanding: Outstanding = { request, replies: new Map(), attempts: 0, timer: null };
    this.current = outstanding;
    this.env.sendRequest(primaryOf(this.view, this.env.replicas.length), request);
    this.armTimer(outstanding);
  }

  private armTimer(outstanding: Outstanding): void {
    const afterUs = this.options.timeoutUs * 2 ** Math.min(outstanding.attempts, MAX_BACKOFF_EXPONENT);
    outstanding.timer = this.env.setTimer(afterUs, TIMER_RETRY, { requestId: outstanding.request.requestId });
  }

  /** The highest view that at least f+1 matching replies vouch for: a lying replica alone can
   * neither raise nor lower it. */
  private learnView(matching: readonly ClientReply[]): void {
    const views = matching.map((r) => r.view).sort((a, b) => b - a);
    const vouched = views[this.env.f];
    if (vouched !== undefined && vouched > this.view) this.view = vouched;
  }
}

function resultKey(reply: ClientReply): string {
  return JSON.stringify([reply.result.value, reply.result.applied]);
}
