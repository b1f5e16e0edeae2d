/**
 * The load generator: closed-loop clients (each keeps exactly one operation outstanding) driving
 * a running cluster over TCP through the protocol's own client logic (`createClient`) on real
 * time. One connection per replica carries every client of this process; replicas route replies
 * by client id, for the ids the connection's hellos proved (one tag per id under that client's
 * key, see hello-auth.ts).
 *
 * Workload: each operation is a read with probability `readRatio`, else a write. With probability
 * `conflictRate` it touches the one hot key all clients share, otherwise one of `keys` keys
 * private to its client: the EPaxos paper's definition of conflict rate, which directly sets how
 * often two clients' commands interfere (what drives EPaxos off its fast path).
 */
import { randomInt } from 'node:crypto';
import { systemClock } from '../../core/clock.ts';
import { createRng, type Rng } from '../../core/rng.ts';
import { LatticeError } from '../../core/errors.ts';
import {
  DEFAULT_PROTOCOL_OPTIONS,
  type ClientEnv,
  type ClientRequest,
  type NodeId,
  type Operation,
  type OperationResult,
  type ProtocolClient,
  type ProtocolDefinition,
  type ProtocolOptions,
  type RequestSigner,
  type TimerHandle,
} from '../protocol.ts';
import { createRequestSigner } from '../auth.ts';
import { readClusterFile } from './cluster-manager.ts';
import { readClusterSecret } from './secret.ts';
import { encodeFrame } from './framing.ts';
import { clientHellos, helloKeysFromSecret } from './hello-auth.ts';
import { OutboundLink } from './outbound-link.ts';
import { loadProtocol, type TcpProtocolName } from './protocols.ts';
import { LatencyRecorder, type LatencySummaryMs } from './latency.ts';
import { parseFrame } from './wire.ts';

export interface LoadOptions {
  /** A cluster.json written by startCluster; or give `ports` (and `protocol`). */
  readonly clusterFile?: string;
  readonly ports?: readonly number[];
  readonly host?: string;
  readonly protocol?: TcpProtocolName;
  readonly clients?: number;
  /** Stop submitting after this long... */
  readonly durationMs?: number;
  /** ...or after this many operations (whichever comes first; at least one must be set). */
  readonly ops?: number;
  readonly keys?: number;
  readonly readRatio?: number;
  readonly conflictRate?: number;
  /** Operations completing in the first `warmupMs` are not measured. */
  readonly warmupMs?: number;
  /** After submitting stops, how long in-flight operations may take before counting as errors. */
  readonly drainMs?: number;
  readonly seed?: number | string;
  /** Client ids are clientIdBase + i; default random, so a rerun never collides with a replica's
   * reply cache from an earlier run against the same cluster. */
  readonly clientIdBase?: number;
  readonly protocolOptions?: Partial<ProtocolOptions>;
  /** The cluster secret clients derive their request keys from; default: the cluster file's
   * secret file, else $LATTICE_CLUSTER_SECRET / $LATTICE_CLUSTER_SECRET_FILE. */
  readonly clusterSecret?: string;
}

export interface LoadResult {
  readonly protocol: string;
  readonly clients: number;
  /** Operations completed inside the measured window. */
  readonly ops: number;
  readonly ops_per_s: number;
  readonly duration_ms: number;
  readonly latency_ms: LatencySummaryMs;
  /** Operations still unanswered when the drain period ended (their outcome is unknown). */
  readonly errors: number;
  readonly submitted: number;
  readonly completed: number;
  /** Requests re-sent after a client timeout. */
  readonly retries: number;
}

interface Target {
  readonly protocolName: TcpProtocolName;
  readonly host: string;
  readonly ports: readonly number[];
  readonly clusterSecret: string;
}

function resolveTarget(opts: LoadOptions): Target {
  if (opts.clusterFile !== undefined) {
    const info = readClusterFile(opts.clusterFile);
    const clusterSecret = opts.clusterSecret ?? readClusterSecret(info.secret_file);
    return { protocolName: opts.protocol ?? info.protocol, host: opts.host ?? info.host, ports: info.ports, clusterSecret };
  }
  if (opts.ports === undefined || opts.protocol === undefined) {
    throw new LatticeError('CONFIG_INVALID', 'runLoad needs clusterFile, or ports and protocol');
  }
  return { protocolName: opts.protocol, host: opts.host ?? '127.0.0.1', ports: opts.ports, clusterSecret: opts.clusterSecret ?? readClusterSecret() };
}

export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const target = resolveTarget(opts);
  const protocol = await loadProtocol(target.protocolName);
  if (opts.durationMs === undefined && opts.ops === undefined) throw new LatticeError('CONFIG_INVALID', 'runLoad needs durationMs or ops');
  const clientCount = opts.clients ?? 16;
  const clientIdBase = opts.clientIdBase ?? randomInt(1, 1 << 20) * 1024;
  const options: ProtocolOptions = { ...DEFAULT_PROTOCOL_OPTIONS, ...opts.protocolOptions };
  const run = new LoadRun(protocol, target, options, opts, clientCount, clientIdBase);
  return run.execute();
}

class LoadRun {
  private readonly links: OutboundLink[] = [];
  private readonly clients = new Map<number, LoadClient>();
  readonly latency = new LatencyRecorder();
  private readonly f: number;
  submitted = 0;
  completed = 0;
  retries = 0;
  measuredFrom = 0;
  submitting = true;
  private readonly opsLimit: number;
  private onIdle: (() => void) | null = null;
  private inFlight = 0;

  constructor(
    readonly protocol: ProtocolDefinition,
    private readonly target: Target,
    readonly options: ProtocolOptions,
    readonly opts: LoadOptions,
    private readonly clientCount: number,
    private readonly clientIdBase: number,
  ) {
    this.f = protocol.faultTolerance(target.ports.length);
    this.opsLimit = opts.ops ?? Number.POSITIVE_INFINITY;
  }

  async execute(): Promise<LoadResult> {
    const clientIds = Array.from({ length: this.clientCount }, (_, i) => this.clientIdBase + i);
    const keys = helloKeysFromSecret(this.target.clusterSecret);
    for (const [node, port] of this.target.ports.entries()) {
      this.links.push(
        new OutboundLink({
          host: this.target.host,
          port,
          hello: () => clientHellos(keys, clientIds, node),
          onFrame: (raw) => {
            const frame = parseFrame(raw);
            if (frame?.t === 'reply') this.clients.get(frame.r.clientId)?.onReply(frame.r);
          },
        }),
      );
    }
    await this.waitForAnyConnection(5000);
    const replicas = this.target.ports.map((_, i) => i);
    const seed = this.opts.seed ?? 1;
    for (const clientId of clientIds) {
      this.clients.set(clientId, new LoadClient(this, clientId, replicas, this.f, createRng(`load/${seed}/${clientId}`), createRequestSigner(this.target.clusterSecret, clientId)));
    }
    const startUs = systemClock.nowUs();
    this.measuredFrom = startUs + (this.opts.warmupMs ?? 0) * 1000;
    for (const client of this.clients.values()) client.next();
    const durationMs = this.opts.durationMs;
    if (durationMs !== undefined) await Promise.race([sleep(durationMs + (this.opts.warmupMs ?? 0)), this.allIdle()]);
    else await this.allIdle();
    this.submitting = false;
    const endUs = systemClock.nowUs();
    await Promise.race([this.allIdle(), sleep(this.opts.drainMs ?? 5000)]);
    let errors = 0;
    for (const client of this.clients.values()) if (client.abandon()) errors++;
    for (const link of this.links) link.close();
    const windowUs = Math.max(1, (durationMs === undefined ? systemClock.nowUs() : endUs) - this.measuredFrom);
    const measured = this.latency.size;
    return {
      protocol: this.target.protocolName,
      clients: this.clientCount,
      ops: measured,
      ops_per_s: Math.round((measured / windowUs) * 1e6 * 10) / 10,
      duration_ms: Math.round(windowUs / 1000),
      latency_ms: this.latency.summaryMs(),
      errors,
      submitted: this.submitted,
      completed: this.completed,
      retries: this.retries,
    };
  }

  send(to: NodeId, request: ClientRequest): void {
    this.links[to]?.sendEncoded(encodeFrame({ t: 'req', r: request }));
  }

  /** A client may start another operation (the ops budget is shared). */
  claimOperation(): boolean {
    if (!this.submitting || this.submitted >= this.opsLimit) return false;
    this.submitted++;
    this.inFlight++;
    return true;
  }

  finished(startUs: number, endUs: number): void {
    this.completed++;
    this.inFlight--;
    if (startUs >= this.measuredFrom && (this.submitting || this.opts.durationMs === undefined)) this.latency.record(endUs - startUs);
    if (this.inFlight === 0 && this.onIdle !== null && (!this.submitting || this.submitted >= this.opsLimit)) this.onIdle();
  }

  private allIdle(): Promise<void> {
    if (this.inFlight === 0 && (!this.submitting || this.submitted >= this.opsLimit)) return Promise.resolve();
    return new Promise((ok) => {
      this.onIdle = () => {
        this.onIdle = null;
        ok();
      };
    });
  }

  private async waitForAnyConnection(timeoutMs: number): Promise<void> {
    const deadline = systemClock.nowUs() + timeoutMs * 1000;
    while (!this.links.some((l) => l.isConnected)) {
      if (systemClock.nowUs() > deadline) {
        for (const link of this.links) link.close();
        throw new LatticeError('TRANSPORT_UNAVAILABLE', `no replica of ${this.target.host}:${this.target.ports.join(',')} accepts connections`, { retriable: true });
      }
      await sleep(20);
    }
  }
}

class LoadClient implements ClientEnv {
  readonly client: ProtocolClient;
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private nextTimerId = 1;
  private nextRequestId = 1;
  private outstanding: { requestId: number; startUs: number } | null = null;

  constructor(
    private readonly run: LoadRun,
    readonly clientId: number,
    readonly replicas: readonly NodeId[],
    readonly f: number,
    readonly rng: Rng,
    private readonly signer: RequestSigner,
  ) {
    this.client = run.protocol.createClient(this, run.options);
  }

  nowUs(): number {
    return systemClock.nowUs();
  }

  sendRequest(to: NodeId, request: ClientRequest): void {
    this.run.send(to, request);
  }

  setTimer(afterUs: number, name: string, data?: unknown): TimerHandle {
    const id = this.nextTimerId++;
    this.timers.set(
      id,
      setTimeout(() => {
        this.timers.delete(id);
        this.client.onTimer(name, data);
      }, Math.max(0, afterUs / 1000)),
    );
    return { id };
  }

  cancelTimer(handle: TimerHandle): void {
    const timer = this.timers.get(handle.id);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.timers.delete(handle.id);
  }

  onReply(reply: Parameters<ProtocolClient['onReply']>[0]): void {
    if (this.outstanding !== null) this.client.onReply(reply);
  }

  retried(): void {
    this.run.retries++;
  }

  complete(requestId: number, _result: OperationResult): void {
    const pending = this.outstanding;
    if (pending === null || pending.requestId !== requestId) return;
    this.outstanding = null;
    this.run.finished(pending.startUs, systemClock.nowUs());
    // Off this stack: the protocol client may still be inside its onReply.
    setImmediate(() => this.next());
  }

  next(): void {
    if (this.outstanding !== null || !this.run.claimOperation()) return;
    const requestId = this.nextRequestId++;
    this.outstanding = { requestId, startUs: systemClock.nowUs() };
    this.client.submit(this.signer.sign({ clientId: this.clientId, requestId, op: this.operation(requestId) }));
  }

  /** Gives up on the outstanding operation (end of run); true if there was one. */
  abandon(): boolean {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    const had = this.outstanding !== null;
    this.outstanding = null;
    return had;
  }

  private operation(requestId: number): Operation {
    const { keys = 16, readRatio = 0.5, conflictRate = 0 } = this.run.opts;
    const keyspace = Math.max(1, keys);
    const key = this.rng.next() < conflictRate ? HOT_KEY : `c${this.clientId}-k${this.rng.int(keyspace)}`;
    if (this.rng.next() < readRatio) return { kind: 'read', key };
    return { kind: 'write', key, value: `c${this.clientId}r${requestId}` };
  }
}

const HOT_KEY = 'hot';

function sleep(ms: number): Promise<void> {
  return new Promise((ok) => setTimeout(ok, ms));
}
