/**
 * One simulated client: implements `ClientEnv`, runs the protocol's client with at most one
 * operation outstanding, and records the Knossos-shaped history (invoke / ok / fail / info).
 */
import type { MetricsSnapshot } from '../../core/metrics-snapshot.ts';
import type { Rng } from '../../core/rng.ts';
import type { FaultKind } from '../../core/trace-schema.ts';
import type {
  ClientEnv,
  ClientReply,
  ClientRequest,
  NodeId,
  Operation,
  OperationResult,
  ProtocolClient,
  ProtocolDefinition,
  ProtocolOptions,
  RequestSigner,
  TimerHandle,
} from '../protocol.ts';
import { createRequestSigner } from '../auth.ts';
import { ClientTelemetry } from '../telemetry.ts';
import type { HistoryEvent } from './history.ts';
import type { Simulator } from './simulator.ts';
import { TimerTable } from './timer-table.ts';
import { SIM_EPOCH_US } from './simulator.ts';
import { WorkloadGenerator, type WorkloadConfig } from './workload.ts';

export interface ClientContext {
  readonly sim: Simulator;
  readonly runId: string;
  readonly replicas: readonly NodeId[];
  readonly f: number;
  readonly protocol: ProtocolDefinition;
  /** Secret the client keys derive from (auth.ts clientKey), the cluster's own. */
  readonly clusterSecret: string;
  sendRequest(clientId: number, to: NodeId, request: ClientRequest): void;
  record(event: HistoryEvent): void;
}

interface Outstanding {
  readonly requestId: number;
  readonly op: Operation;
  readonly startUs: number;
}

export class ClientHost implements ClientEnv {
  readonly replicas: readonly NodeId[];
  readonly f: number;
  readonly client: ProtocolClient;
  private readonly workload: WorkloadGenerator;
  private readonly signer: RequestSigner;
  private readonly timers: TimerTable;
  private nextRequestId = 1;
  private outstanding: Outstanding | null = null;
  private readonly thinkUs: number;
  /** Cleared at the end of the fault period: the quiet period only drains what is in flight. */
  submitting = true;
  submitted = 0;
  completed = 0;
  /** Counters for this client's metrics snapshots. */
  readonly telemetry: ClientTelemetry;

  constructor(
    readonly clientId: number,
    private readonly ctx: ClientContext,
    readonly rng: Rng,
    workload: WorkloadConfig,
    options: ProtocolOptions,
  ) {
    this.timers = new TimerTable(ctx.sim);
    this.replicas = ctx.replicas;
    this.f = ctx.f;
    this.workload = new WorkloadGenerator(workload, clientId, rng.fork('workload'));
    this.thinkUs = workload.thinkUs;
    this.signer = createRequestSigner(ctx.clusterSecret, clientId);
    this.client = ctx.protocol.createClient(this, options);
    this.telemetry = new ClientTelemetry(clientId, ctx.sim.nowUs());
  }

  get idle(): boolean {
    return this.outstanding === null;
  }

  nowUs(): number {
    return this.ctx.sim.nowUs();
  }

  sendRequest(to: NodeId, request: ClientRequest): void {
    this.ctx.sendRequest(this.clientId, to, request);
  }

  setTimer(afterUs: number, name: string, data?: unknown): TimerHandle {
    return this.timers.set(afterUs, () => this.client.onTimer(name, data));
  }

  cancelTimer(handle: TimerHandle): void {
    this.timers.cancel(handle);
  }

  onReply(reply: ClientReply): void {
    this.client.onReply(reply);
  }

  retried(): void {
    this.telemetry.retried();
  }

  /** This client's metrics snapshot of the interval ending now. */
  takeSnapshot(faults: readonly FaultKind[], faultyNodes: readonly NodeId[], recovering: boolean): MetricsSnapshot {
    const nowUs = this.ctx.sim.nowUs();
    return this.telemetry.take({ runId: this.ctx.runId, protocol: this.ctx.protocol.name, tsUs: nowUs, nodeClockUs: nowUs, faults, faultyNodes, recovering }, this.outstanding === null ? 0 : 1);
  }

  /** Schedules the next operation after `delayUs` (if the client is still submitting). */
  scheduleNext(delayUs: number): void {
    this.ctx.sim.schedule(delayUs, 'client', () => this.submitNext());
  }

  private submitNext(): void {
    if (!this.submitting || this.outstanding !== null) return;
    const requestId = this.nextRequestId++;
    const op = this.workload.next(requestId);
    this.outstanding = { requestId, op, startUs: this.ctx.sim.nowUs() };
    this.submitted++;
    this.ctx.record({ process: this.clientId, type: 'invoke', f: op.kind, key: op.key, ...invokeValue(op), time: this.time() });
    this.client.submit(this.signer.sign({ clientId: this.clientId, requestId, op }));
  }

  complete(requestId: number, result: OperationResult): void {
    const pending = this.outstanding;
    if (pending === null || pending.requestId !== requestId) return;
    this.outstanding = null;
    this.completed++;
    this.telemetry.opCompleted(this.ctx.sim.nowUs() - pending.startUs);
    const op = pending.op;
    const time = this.time();
    if (op.kind === 'read') {
      this.workload.observe(op.key, result.value);
      this.ctx.record({ process: this.clientId, type: 'ok', f: 'read', key: op.key, value: result.value, time });
    } else if (op.kind === 'write') {
      this.workload.observe(op.key, op.value);
      this.ctx.record({ process: this.clientId, type: 'ok', f: 'write', key: op.key, value: op.value, time });
    } else {
      // A cas that did not apply surely took no effect: `fail`, and we learn the current value.
      this.workload.observe(op.key, result.applied ? op.value : result.value);
      this.ctx.record({ process: this.clientId, type: result.applied ? 'ok' : 'fail', f: 'cas', key: op.key, value: [op.expected, op.value], time });
    }
    if (this.submitting) this.scheduleNext(this.thinkUs);
  }

  /** At the end of a run: a still-pending operation may or may not have taken effect. */
  abandonPending(): boolean {
    const pending = this.outstanding;
    if (pending === null) return false;
    this.outstanding = null;
    const op = pending.op;
    this.ctx.record({ process: this.clientId, type: 'info', f: op.kind, key: op.key, ...invokeValue(op), time: this.time() });
    return true;
  }

  private time(): number {
    return this.ctx.sim.nowUs() - SIM_EPOCH_US;
  }
}

function invokeValue(op: Operation): Pick<HistoryEvent, 'value'> {
  if (op.kind === 'write') return { value: op.value };
  if (op.kind === 'cas') return { value: [op.expected, op.value] };
  return {};
}
