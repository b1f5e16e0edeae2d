/**
 * `lattice chaos generate --corpus FILE`, composed: the spec's plan, its files (a scenario per
 * run, labels.json, corpus.json), the runner (ingesting through the pipeline, or only simulating
 * with `--no-ingest`), progress, and the census of 100 ms windows per label at the end.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import type { Protocol } from '../core/trace-schema.ts';
import { CENSUS_SINK_MODULE, readCensusFile, type CensusFileSinkOptions } from '../cluster/chaos/census-file-sink.ts';
import type { CorpusSpec } from '../cluster/chaos/corpus-spec.ts';
import type { Scenario } from '../cluster/chaos/scenario.ts';
import type { RunResult } from '../cluster/run.ts';
import { outcomeOf, runCorpus, simulationRunner, type CorpusReport, type CorpusRunner } from '../cluster/chaos/corpus-run.ts';
import { CORPUS_WINDOW_MS, summarizePlan, type CorpusPlanSummary, type CorpusRun } from '../cluster/chaos/generate.ts';
import { countingSink, formatCensus, WindowCensus } from '../cluster/chaos/window-census.ts';
import { protocolByName } from '../cluster/protocols.ts';
import { progressReporter } from './corpus-progress.ts';
import type { Pipeline } from './pipeline.ts';

/** The in-process runner that ships every run into the store, counting its windows on the way. */
export function ingestRunner(pipeline: Pipeline, windowMs = CORPUS_WINDOW_MS): CorpusRunner {
  return {
    concurrency: 1,
    async run(job) {
      const census = new WindowCensus(windowMs);
      const { result, stored, deadLettered } = await pipeline.ingestRun(protocolByName(job.protocol), job.scenario, job.seed, {
        runId: job.labels.run_id,
        wrapSink: (sink) => countingSink(census, sink),
      });
      return outcomeOf(result, census.counts(), { stored, deadLettered });
    },
  };
}

/**
 * What a worker pool offers a corpus (cluster/run-pool.ts's RunPool fits it): runs a simulation
 * in another process with a sink built there from a module, and returns its RunResult.
 */
export interface SimulationPool {
  readonly size: number;
  run(job: {
    readonly protocol: Protocol;
    readonly scenario: Scenario;
    readonly seed: number;
    readonly runId: string;
    readonly sink: { readonly kind: 'module'; readonly module: string; readonly options: CensusFileSinkOptions };
  }): Promise<RunResult>;
}

/**
 * Runs through a worker pool, `pool.size` at a time: each worker counts its run's windows into a
 * census file (cluster/chaos/census-file-sink.ts) that is read back here. Records are not
 * ingested (they stay in the worker): the `--no-ingest` path with more than one core.
 */
export function poolRunner(pool: SimulationPool, censusDir: string, windowMs = CORPUS_WINDOW_MS): CorpusRunner {
  mkdirSync(censusDir, { recursive: true });
  return {
    concurrency: pool.size,
    async run(job) {
      const path = join(censusDir, `${job.labels.run_id}.census.json`);
      const result = await pool.run({
        protocol: job.protocol,
        scenario: job.scenario,
        seed: job.seed,
        runId: job.labels.run_id,
        sink: { kind: 'module', module: CENSUS_SINK_MODULE, options: { path, windowMs } },
      });
      const census = readCensusFile(path);
      rmSync(path, { force: true });
      return outcomeOf(result, census);
    },
  };
}

/** Writes every run's scenario and labels.json (an array of run labels, in run order). */
export function writeCorpusFiles(out: string, jobs: readonly CorpusRun[]): void {
  mkdirSync(out, { recursive: true });
  for (const job of jobs) writeFileSync(join(out, job.labels.file), toYaml(job.scenario));
  writeFileSync(join(out, 'labels.json'), `${JSON.stringify(jobs.map((j) => j.labels), null, 2)}\n`);
}

export interface CorpusManifest {
  readonly corpus: string;
  readonly source: string;
  readonly spec: CorpusSpec;
  readonly runs: number;
  readonly plan: Record<string, CorpusPlanSummary>;
  readonly report?: CorpusReport;
}

export function writeManifest(out: string, manifest: CorpusManifest): void {
  writeFileSync(join(out, 'corpus.json'), `${JSON.stringify(manifest, null, 2)}\n`);
}

/** What the plan holds, for a person, before anything runs. */
export function planText(spec: CorpusSpec, source: string, plan: Record<string, CorpusPlanSummary>, out: string): string {
  const protocols = Object.entries(plan);
  const runs = protocols.reduce((sum, [, p]) => sum + p.runs, 0);
  return [
    `corpus ${spec.name} (${source}): ${runs} runs of ${spec.duration_ms} ms — ${protocols.map(([name, p]) => `${name} ${p.runs} (${p.fault_free_runs} fault-free, ${p.episodes} episode${p.episodes === 1 ? '' : 's'})`).join(', ')}`,
    `planned normal ${CORPUS_WINDOW_MS} ms windows (nodes × stretch outside episodes and their recovery_ms): ${protocols
      .map(([name, p]) => `${name} ${p.normal_windows.toLocaleString('en-US')} (${p.normal_windows_fault_free_runs.toLocaleString('en-US')} in fault-free runs)`)
      .join(', ')}`,
    `scenarios, labels.json and corpus.json in ${out}`,
  ].join('\n');
}

export interface CorpusCommandOptions {
  readonly spec: CorpusSpec;
  readonly source: string;
  readonly jobs: readonly CorpusRun[];
  readonly out: string;
  readonly json: boolean;
  /** Open the pipeline only when ingesting (opening it starts the store and the collector). */
  readonly openPipeline?: () => Promise<Pipeline>;
  /** Without a pipeline: the runner to use (default: sequential, in process; e.g. `poolRunner`). */
  readonly runner?: CorpusRunner;
  readonly write: (text: string) => void;
}

export interface CorpusCommandResult {
  readonly report: CorpusReport;
  readonly store?: string;
}

/** Writes the files, runs the corpus with progress, writes corpus.json, prints the census. */
export async function generateCorpus(options: CorpusCommandOptions): Promise<CorpusCommandResult> {
  const { spec, source, jobs, out } = options;
  const plan = summarizePlan(jobs);
  writeCorpusFiles(out, jobs);
  if (!options.json) options.write(`${planText(spec, source, plan, out)}\n`);
  const pipeline = options.openPipeline === undefined ? undefined : await options.openPipeline();
  const runner = pipeline === undefined ? (options.runner ?? simulationRunner()) : ingestRunner(pipeline);
  const progress = options.json ? undefined : progressReporter({ label: `corpus ${spec.name}` });
  let report: CorpusReport;
  try {
    progress?.start(jobs.length);
    report = await runCorpus(jobs, runner, (p) => progress?.update(p));
  } finally {
    progress?.stop();
    await pipeline?.close();
  }
  // Each outcome keeps its own census: windows per label per run, for evaluation split by run.
  writeManifest(out, { corpus: spec.name, source, spec, runs: jobs.length, plan, report });
  if (!options.json) {
    const where = pipeline === undefined ? 'simulated, not ingested (--no-ingest)' : `ingested into ${pipeline.store.location}`;
    options.write(`\n${formatCensus(report.census)}\n\n${jobs.length} runs, ${report.records.toLocaleString('en-US')} records ${where}\n`);
    for (const failed of report.failed) options.write(`FAILED: ${failed.replay}${failed.error !== undefined ? ` (${failed.error})` : ''}\n`);
  }
  return { report, ...(pipeline !== undefined && { store: pipeline.store.location }) };
}
