/**
 * The state machine the harness hands to a replica: the runtime store and the independently
 * written shadow, fed the same operations. `check()` compares their digests (and any divergence
 * in the results they returned); the executed-operation log feeds the safety checkers.
 */
import type {
  ClientRequest,
  Operation,
  OperationResult,
  RequestOrigin,
  StateMachine,
  StateSnapshot,
} from '../protocol.ts';
import type { Rng } from '../../core/rng.ts';
import { KvStateMachine, type Corruption } from './kv-state-machine.ts';
import { ShadowModel } from './shadow-model.ts';

/** One executed operation; `position` is its index in this replica's execution order. */
export interface ExecutedOp {
  readonly position: number;
  /** -1 when the caller did not say which request this was. */
  readonly clientId: number;
  readonly requestId: number;
  readonly key: string;
  readonly op: Operation;
  readonly result: OperationResult;
}

/** Positions before a restored checkpoint whose operations this replica never saw are holes. */
export type ExecutedLog = ReadonlyArray<ExecutedOp | undefined>;

export interface DigestCheck {
  readonly runtime: string;
  readonly shadow: string;
  /** Digests equal and the two never returned different results since the last restore. */
  readonly match: boolean;
  /** Position of the first operation where runtime and shadow results differed, if any. */
  readonly resultMismatchAt: number | null;
}

/** A snapshot that also says how many operations produced it, so a restore keeps positions aligned. */
export interface VerifiedSnapshot extends StateSnapshot {
  readonly executedCount: number;
}

export interface VerifiedStateMachineOptions {
  /** Keep the executed-operation log (default true; benchmarks and long runs turn it off). */
  readonly keepLog?: boolean;
  /** Called with every executed operation as it happens, so checks can run without the log. */
  readonly onExecute?: (op: ExecutedOp) => void;
  /** Called after a restore that set the executed count (the log was cut or padded to it). */
  readonly onRestore?: (executedCount: number) => void;
}

const UNKNOWN_ORIGIN: RequestOrigin = { clientId: -1, requestId: -1 };

export class VerifiedStateMachine implements StateMachine {
  readonly runtime = new KvStateMachine();
  readonly shadow = new ShadowModel();
  private log: Array<ExecutedOp | undefined> = [];
  private executed = 0;
  private resultMismatchAt: number | null = null;
  private readonly keepLog: boolean;
  private readonly onExecute: ((op: ExecutedOp) => void) | undefined;
  private readonly onRestore: ((executedCount: number) => void) | undefined;

  constructor(options: VerifiedStateMachineOptions = {}) {
    this.keepLog = options.keepLog ?? true;
    this.onExecute = options.onExecute;
    this.onRestore = options.onRestore;
  }

  execute(op: Operation, origin: RequestOrigin = UNKNOWN_ORIGIN): OperationResult {
    const result = this.runtime.execute(op);
    const expected = this.shadow.apply(op);
    const position = this.executed++;
    if (this.resultMismatchAt === null && (result.value !== expected.value || result.applied !== expected.applied)) {
      this.resultMismatchAt = position;
    }
    if (this.keepLog || this.onExecute !== undefined) {
      const executed: ExecutedOp = { position, clientId: origin.clientId, requestId: origin.requestId, key: op.key, op, result };
      if (this.keepLog) this.log.push(executed);
      this.onExecute?.(executed);
    }
    return result;
  }

  executeRequest(request: ClientRequest): OperationResult {
    return this.execute(request.op, request);
  }

  /** The runtime's digest: what a replica puts in checkpoints and replies. */
  digest(): string {
    return this.runtime.digest();
  }

  check(): DigestCheck {
    const runtime = this.runtime.digest();
    const shadow = this.shadow.digest();
    return { runtime, shadow, match: runtime === shadow && this.resultMismatchAt === null, resultMismatchAt: this.resultMismatchAt };
  }

  snapshot(): VerifiedSnapshot {
    return { entries: this.runtime.snapshot().entries, executedCount: this.executed };
  }

  /**
   * Restores both models. With an `executedCount` (our own snapshots carry one) the log is cut
   * or padded with holes to that position, so positions stay comparable across replicas after a
   * rollback or a state transfer; without one, positions simply continue.
   */
  restore(snapshot: StateSnapshot): void {
    this.runtime.restore(snapshot);
    this.shadow.load(snapshot.entries);
    this.resultMismatchAt = null;
    const count = (snapshot as Partial<VerifiedSnapshot>).executedCount;
    if (typeof count === 'number' && Number.isInteger(count) && count >= 0) {
      this.executed = count;
      if (this.keepLog) this.log.length = count;
      this.onRestore?.(count);
    }
  }

  /** The chaos engine's state_corruption fault, applied to the runtime only. */
  corrupt(rng: Rng): Corruption {
    return this.runtime.corrupt(rng);
  }

  executedLog(): ExecutedLog {
    return this.log;
  }

  get executedCount(): number {
    return this.executed;
  }
}
