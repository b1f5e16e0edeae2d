/**
 * Runs many simulations side by side, one per worker process (node:child_process fork), as many
 * workers as there are cores unless told otherwise. A simulation is one synchronous event loop, so
 * processes, not async interleaving, are what use a second core. Each run streams its records to a
 * sink built inside its worker (records never cross the process boundary: only the RunResult
 * summary comes back), so the pool's memory is that of its workers, each flat in run length.
 *
 *   const pool = new RunPool({ workers: 2 });
 *   const result = await pool.run({ protocol: 'pbft', scenario, seed: 7, sink: { kind: 'ndjson', path } });
 *   await pool.close();
 *
 * or `runPool(jobs, { onOutcome })` for a batch, outcomes in job order. The same job gives the
 * same traceHash in a worker as in this process (same code, same seed).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { LatticeError, ValidationError, type ErrorCode } from '../core/errors.ts';
import type { Protocol } from '../core/trace-schema.ts';
import type { Scenario } from './chaos/scenario.ts';
import type { ProtocolOptions } from './protocol.ts';
import type { RunResult } from './run.ts';

/**
 * Where a worker sends one run's records. `module`: a module the worker imports, whose export
 * (default `createSink`) is called with (`options`, the job) and returns a TraceSink, optionally
 * with `close()` (awaited after the run) — how the composition root plugs in a transport producer.
 */
export type PoolSinkSpec =
  | { readonly kind: 'discard' }
  | { readonly kind: 'ndjson'; readonly path: string }
  | { readonly kind: 'module'; readonly module: string; readonly export?: string; readonly options?: unknown };

export interface PoolJob {
  readonly protocol: Protocol;
  /** A validated scenario (plain data: it is sent to the worker). */
  readonly scenario: Scenario;
  readonly seed: number;
  readonly runId?: string;
  readonly protocolOptions?: Partial<ProtocolOptions>;
  readonly checkLinearizability?: boolean;
  /** Default: discard (the run is still checked and hashed). */
  readonly sink?: PoolSinkSpec;
}

export type PoolOutcome =
  | { readonly index: number; readonly job: PoolJob; readonly ok: true; readonly result: RunResult }
  | { readonly index: number; readonly job: PoolJob; readonly ok: false; readonly error: LatticeError };

export interface RunPoolOptions {
  /** Worker processes (default: available cores). */
  readonly workers?: number;
}

/** Messages between the pool and a worker (cluster/run-pool-worker.ts). */
export type ToWorker = { readonly type: 'run'; readonly id: number; readonly job: PoolJob };
export type FromWorker =
  | { readonly type: 'done'; readonly id: number; readonly result: RunResult }
  | { readonly type: 'failed'; readonly id: number; readonly error: { readonly code: ErrorCode | null; readonly message: string; readonly retriable: boolean } };

interface Task {
  readonly id: number;
  readonly job: PoolJob;
  readonly resolve: (result: RunResult) => void;
  readonly reject: (error: LatticeError) => void;
}

interface Worker {
  readonly child: ChildProcess;
  task: Task | null;
}

const WORKER_FILE = fileURLToPath(new URL('./run-pool-worker.ts', import.meta.url));

/** The worker is TypeScript: it runs under tsx's loader, as the CLI does. */
function loaderArgs(): string[] {
  const loader = createRequire(import.meta.url).resolve('tsx');
  return ['--import', pathToFileURL(loader).href];
}

export class RunPool {
  readonly size: number;
  private readonly idle: Worker[] = [];
  private readonly all = new Set<Worker>();
  private readonly queue: Task[] = [];
  private nextId = 0;
  private closed = false;
  /** close() waiting for the last runs. */
  private readonly drained: Array<() => void> = [];

  constructor(options: RunPoolOptions = {}) {
    const size = options.workers ?? availableParallelism();
    if (!Number.isInteger(size) || size < 1) {
      throw new ValidationError('run pool options', [{ path: 'workers', message: `expected an integer >= 1, got ${String(size)}` }]);
    }
    this.size = size;
  }

  /** Runs one job in a worker; resolves with its summary (a run that failed its checks resolves, `ok` false). */
  run(job: PoolJob): Promise<RunResult> {
    if (this.closed) return Promise.reject(new LatticeError('VALIDATION_FAILED', 'the run pool is closed'));
    return new Promise<RunResult>((resolve, reject) => {
      this.queue.push({ id: this.nextId++, job, resolve, reject });
      this.dispatch();
    });
  }

  /** Stops the workers once the queued runs are done. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.queue.length > 0 || [...this.all].some((w) => w.task !== null)) {
      await new Promise<void>((resolve) => this.drained.push(resolve));
    }
    const exits = [...this.all].map((w) => new Promise<void>((resolve) => (w.child.exitCode !== null ? resolve() : w.child.once('exit', () => resolve()))));
    for (const worker of this.all) worker.child.disconnect();
    await Promise.all(exits);
    this.all.clear();
    this.idle.length = 0;
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      let worker = this.idle.pop();
      if (worker === undefined && this.all.size < this.size) worker = this.spawn();
      if (worker === undefined) return;
      const task = this.queue.shift() as Task;
      worker.task = task;
      const message: ToWorker = { type: 'run', id: task.id, job: task.job };
      worker.child.send(message);
    }
  }

  private spawn(): Worker {
    // 'advanced' serialisation (structured clone) carries the result's Maps as they are.
    const child = fork(WORKER_FILE, [], { execArgv: loaderArgs(), serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const worker: Worker = { child, task: null };
    this.all.add(worker);
    child.on('message', (message: FromWorker) => {
      const task = worker.task;
      if (task === null || message.id !== task.id) return;
      worker.task = null;
      if (message.type === 'done') task.resolve(message.result);
      else task.reject(new LatticeError(message.error.code ?? 'CLUSTER_INVARIANT_VIOLATED', `run ${describe(task.job)}: ${message.error.message}`, { retriable: message.error.retriable }));
      this.idle.push(worker);
      this.dispatch();
      this.notifyIfDrained();
    });
    child.on('exit', (code, signal) => {
      this.all.delete(worker);
      const at = this.idle.indexOf(worker);
      if (at >= 0) this.idle.splice(at, 1);
      const task = worker.task;
      worker.task = null;
      if (task !== null) {
        task.reject(new LatticeError('CLUSTER_INVARIANT_VIOLATED', `run ${describe(task.job)}: its worker process exited (${signal ?? `code ${code}`}) before finishing`));
      }
      // Later jobs still run: a new worker takes the dead one's place.
      this.dispatch();
      this.notifyIfDrained();
    });
    return worker;
  }

  private notifyIfDrained(): void {
    if (this.queue.length > 0 || [...this.all].some((w) => w.task !== null)) return;
    for (const resolve of this.drained.splice(0)) resolve();
  }
}

/** Runs every job on a pool of its own, outcomes in job order; one failing job does not stop the rest. */
export async function runPool(
  jobs: readonly PoolJob[],
  options: RunPoolOptions & { readonly onOutcome?: (outcome: PoolOutcome) => void } = {},
): Promise<PoolOutcome[]> {
  const pool = new RunPool({ workers: Math.max(1, Math.min(options.workers ?? availableParallelism(), jobs.length)) });
  try {
    return await Promise.all(
      jobs.map(async (job, index): Promise<PoolOutcome> => {
        let outcome: PoolOutcome;
        try {
          outcome = { index, job, ok: true, result: await pool.run(job) };
        } catch (error) {
          outcome = { index, job, ok: false, error: error instanceof LatticeError ? error : new LatticeError('CLUSTER_INVARIANT_VIOLATED', String(error), { cause: error }) };
        }
        options.onOutcome?.(outcome);
        return outcome;
      }),
    );
  } finally {
    await pool.close();
  }
}

function describe(job: PoolJob): string {
  return `seed=${job.seed} protocol=${job.protocol} scenario=${job.scenario.name}`;
}
