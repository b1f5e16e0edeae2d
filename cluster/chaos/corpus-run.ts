/**
 * Runs a planned corpus through one swappable runner: the sequential in-process one here
 * (`simulationRunner`, records counted then dropped), the ingesting one in app/ (records counted
 * on their way into the store), or a worker pool later — each returns the same plain-data
 * outcome, census included, so where a run happened does not change what is reported.
 */
import { LatticeError } from '../../core/errors.ts';
import type { TraceSink } from '../../core/sink.ts';
import type { Protocol } from '../../core/trace-schema.ts';
import { protocolByName } from '../protocols.ts';
import { runSimulation, type RunResult } from '../run.ts';
import type { CorpusRun } from './generate.ts';
import { countingSink, emptyCensus, mergeCensus, WindowCensus, type CensusCounts } from './window-census.ts';

/** What one run of a corpus gave (plain data: it may come back from another process). */
export interface CorpusRunOutcome {
  readonly run_id: string;
  readonly protocol: Protocol;
  readonly scenario: string;
  readonly seed: number;
  /** Safe, and (within the fault model) live; false also when the simulation failed (`error`). */
  readonly ok: boolean;
  readonly records: number;
  /** Rows the store holds for the run (ingesting runners only). */
  readonly stored?: number;
  readonly dead_lettered?: number;
  readonly trace_hash: string;
  readonly ops_submitted: number;
  readonly ops_completed: number;
  readonly ops_pending: number;
  readonly safety_violations: readonly string[];
  readonly beyond_fault_model: boolean;
  readonly virtual_ms: number;
  readonly replay: string;
  readonly error?: string;
  readonly census: CensusCounts;
}

export interface CorpusRunner {
  /** Runs in flight at once (1: one after another). */
  readonly concurrency: number;
  run(job: CorpusRun): Promise<CorpusRunOutcome>;
}

export interface CorpusProgress {
  readonly done: number;
  readonly total: number;
  readonly records: number;
  readonly failed: number;
  readonly last: CorpusRunOutcome;
}

export interface CorpusReport {
  /** In the jobs' order. */
  readonly outcomes: readonly CorpusRunOutcome[];
  readonly census: CensusCounts;
  readonly records: number;
  readonly failed: readonly CorpusRunOutcome[];
}

/**
 * Runs every job through the runner (up to `runner.concurrency` at once), reporting each one as
 * it finishes. A simulation that fails its invariants is a finding about that run: it is recorded
 * as failed and the corpus goes on. Anything else (the store, the transport) stops the corpus.
 */
export async function runCorpus(jobs: readonly CorpusRun[], runner: CorpusRunner, onProgress: (progress: CorpusProgress) => void = () => {}, windowMs = 100): Promise<CorpusReport> {
  const outcomes: CorpusRunOutcome[] = new Array<CorpusRunOutcome>(jobs.length);
  let next = 0;
  let done = 0;
  let records = 0;
  let failed = 0;
  const lane = async (): Promise<void> => {
    while (next < jobs.length) {
      const index = next++;
      const job = jobs[index]!;
      let outcome: CorpusRunOutcome;
      try {
        outcome = await runner.run(job);
      } catch (error) {
        if (!(error instanceof LatticeError && error.code === 'CLUSTER_INVARIANT_VIOLATED')) throw error;
        outcome = failedOutcome(job, error, windowMs);
      }
      outcomes[index] = outcome;
      done++;
      records += outcome.records;
      if (!outcome.ok) failed++;
      onProgress({ done, total: jobs.length, records, failed, last: outcome });
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(runner.concurrency, jobs.length)) }, lane));
  return {
    outcomes,
    census: outcomes.reduce((sum, o) => mergeCensus(sum, o.census), emptyCensus(windowMs)),
    records,
    failed: outcomes.filter((o) => !o.ok),
  };
}

export function outcomeOf(result: RunResult, census: CensusCounts, stored?: { stored: number; deadLettered: number }): CorpusRunOutcome {
  return {
    run_id: result.runId,
    protocol: result.protocol,
    scenario: result.scenario,
    seed: result.seed,
    ok: result.ok,
    records: result.records,
    ...(stored !== undefined && { stored: stored.stored, dead_lettered: stored.deadLettered }),
    trace_hash: result.traceHash,
    ops_submitted: result.submittedOps,
    ops_completed: result.completedOps,
    ops_pending: result.pendingOps,
    safety_violations: result.safetyViolations.map((v) => `${v.kind}: ${v.detail}`),
    beyond_fault_model: result.beyondFaultModel,
    virtual_ms: Math.round(result.virtualDurationUs / 1000),
    replay: result.replay,
    census,
  };
}

function failedOutcome(job: CorpusRun, error: Error, windowMs: number): CorpusRunOutcome {
  return {
    run_id: job.labels.run_id,
    protocol: job.protocol,
    scenario: job.scenario.name,
    seed: job.seed,
    ok: false,
    records: 0,
    trace_hash: '',
    ops_submitted: 0,
    ops_completed: 0,
    ops_pending: 0,
    safety_violations: [],
    beyond_fault_model: job.labels.beyond_fault_model,
    virtual_ms: 0,
    replay: `seed=${job.seed} protocol=${job.protocol} scenario=${job.scenario.name}`,
    error: error.message,
    census: emptyCensus(windowMs),
  };
}

export interface SimulationRunnerOptions {
  readonly windowMs?: number;
  /** Where records go after the census (default: nowhere — only counted). */
  readonly sinkFor?: (job: CorpusRun) => TraceSink;
}

/** The sequential in-process runner: simulates each run here, counting its windows. */
export function simulationRunner(options: SimulationRunnerOptions = {}): CorpusRunner {
  return {
    concurrency: 1,
    async run(job) {
      const census = new WindowCensus(options.windowMs);
      const result = await runSimulation({
        protocol: protocolByName(job.protocol),
        scenario: job.scenario,
        seed: job.seed,
        runId: job.labels.run_id,
        sink: countingSink(census, options.sinkFor?.(job)),
      });
      return outcomeOf(result, census.counts());
    },
  };
}
