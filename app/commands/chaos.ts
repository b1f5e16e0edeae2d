import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { stringify as toYaml } from 'yaml';
import type { LatticeConfig } from '../../core/config.ts';
import { ValidationError } from '../../core/errors.ts';
import type { Logger } from '../../core/logging.ts';
import { DiscardSink } from '../../core/sink.ts';
import type { Protocol } from '../../core/trace-schema.ts';
import { loadCorpusSpecFile } from '../../cluster/chaos/corpus-spec.ts';
import { generateScenarios, planCorpus, summarizePlan } from '../../cluster/chaos/generate.ts';
import { countingSink, emptyCensus, formatCensus, WindowCensus } from '../../cluster/chaos/window-census.ts';
import { outcomeOf } from '../../cluster/chaos/corpus-run.ts';
import { loadScenarioFile, type FaultSpec } from '../../cluster/chaos/scenario.ts';
import { listScenarios, protocolByName, scenarioPath } from '../../cluster/protocols.ts';
import { runSimulation, type RunResult } from '../../cluster/run.ts';
import { contextOf, integerOption } from '../cli.ts';
import { RunPool } from '../../cluster/run-pool.ts';
import { generateCorpus, planText, poolRunner, writeCorpusFiles, writeManifest } from '../corpus.ts';
import { progressReporter } from '../corpus-progress.ts';
import { Pipeline } from '../pipeline.ts';

/** What `chaos run` and the short `chaos generate` print per run: a corpus run's outcome
 * (cluster/chaos/corpus-run.ts), with counts of violations and mismatches and the faults injected. */
function runSummary(result: RunResult, stored?: number) {
  const { census: _census, safety_violations: violations, ...outcome } = outcomeOf(result, emptyCensus());
  return {
    ...outcome,
    ...(stored !== undefined && { stored }),
    safety_violations: violations.length,
    shadow_mismatches: result.shadowMismatchCount,
    snapshots: result.snapshots,
    faults: [...new Set(result.faultLog.flatMap((f) => (f.kind === undefined ? [] : [f.kind])))].sort(),
  };
}

export function registerChaosCommands(program: Command): void {
  const chaos = program.command('chaos').description('run chaos scenarios against the simulated cluster, and generate training corpora');

  chaos
    .command('run')
    .description('run one scenario (a file, or a built-in name from `lattice chaos list`) with a seed; ships the trace into the store unless --no-ingest')
    .argument('<scenario>', 'scenario file (YAML/JSON) or built-in scenario name')
    .option('-s, --seed <n>', 'seed (same seed and scenario, same trace)', integerOption('--seed'), 1)
    .addOption(new Option('-p, --protocol <name>', 'protocol (default: the scenario\'s own)').choices(['pbft', 'epaxos']))
    .option('--no-ingest', 'only simulate and check; do not ship the trace into the store')
    .option('--json', 'print the result as one JSON object')
    .action(async (scenarioArg: string, options: { seed: number; protocol?: Protocol; ingest: boolean; json?: boolean }, command: Command) => {
      const { config, logger } = contextOf(command);
      const scenario = loadScenarioFile(scenarioPath(scenarioArg));
      const protocol = protocolByName(options.protocol ?? scenario.protocol ?? 'pbft');
      let summary: ReturnType<typeof runSummary>;
      if (options.ingest) {
        const pipeline = await Pipeline.open(config, logger);
        try {
          const { result, stored } = await pipeline.ingestRun(protocol, scenario, options.seed);
          summary = runSummary(result, stored);
        } finally {
          await pipeline.close();
        }
      } else {
        // Only the summary is printed: records are counted and dropped, so memory stays flat in run length.
        summary = runSummary(await runSimulation({ protocol, scenario, seed: options.seed, sink: new DiscardSink() }));
      }
      if (options.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
      else {
        for (const [key, value] of Object.entries(summary)) process.stdout.write(`${key.padEnd(20)} ${Array.isArray(value) ? value.join(', ') : String(value)}\n`);
      }
      if (!summary.ok) {
        process.stderr.write(`run FAILED its checks; replay with: lattice chaos run ${scenarioArg} --protocol ${protocol.name} --seed ${options.seed}\n`);
        process.exitCode = 1;
      }
    });

  chaos
    .command('generate')
    .description(
      'generate a labelled corpus, write its scenarios and labels.json, and run + ingest each run (progress with ETA; a census of 100 ms windows per label at the end).\n' +
        'With --corpus FILE (training/corpus/*.yaml, format in docs/corpus.md): the spec\'s seeds, separated fault episodes, loads and noise.\n' +
        'Without: --count short runs of 1–3 overlapping faults from --seed (the chaos-sweep generator).',
    )
    .option('--corpus <file>', 'a corpus specification (YAML/JSON): seeds, protocols, duration, episodes, fault families, loads, noise')
    .option('-n, --count <k>', 'number of scenarios (without --corpus)', integerOption('--count', 1), 20)
    .option('-s, --seed <n>', 'seed of the corpus (without --corpus)', integerOption('--seed'), 1)
    .addOption(new Option('-p, --protocol <name>', 'protocol (default pbft; with --corpus: only this protocol\'s runs)').choices(['pbft', 'epaxos']))
    .option('-o, --out <dir>', 'where to write the scenario files, labels.json and corpus.json (default .lattice/corpus, with --corpus .lattice/corpus/<name>)')
    .option('--duration-ms <n>', 'length of each run (overrides the spec\'s duration_ms; episodes keep their own durations)', integerOption('--duration-ms', 1))
    .option('--limit <n>', 'only the first N runs of the corpus (the same runs as in the whole corpus)', integerOption('--limit', 1))
    .option('--workers <n>', 'with --corpus and --no-ingest: simulations in parallel, one worker process each', integerOption('--workers', 1), 1)
    .option('--no-ingest', 'simulate, check and count windows, but do not ship the traces into the store')
    .option('--no-run', 'only write the scenario files and labels')
    .option('--json', 'print a JSON summary instead of a progress bar and tables')
    .action(async (options: GenerateFlags, command: Command) => {
      const { config, logger } = contextOf(command);
      if (options.corpus !== undefined) {
        for (const flag of ['count', 'seed'] as const) {
          if (command.getOptionValueSource(flag) === 'cli') throw new ValidationError('command line', [{ path: `--${flag}`, message: 'a corpus file declares its own seeds and counts; drop it or --corpus' }]);
        }
        await generateFromSpec({ ...options, corpus: options.corpus }, config, logger);
        return;
      }
      await generateLegacy(options, config, logger);
    });

  chaos
    .command('list')
    .description('list the built-in scenarios')
    .action(() => {
      for (const name of listScenarios()) {
        const scenario = loadScenarioFile(scenarioPath(name));
        process.stdout.write(`${name.padEnd(32)} ${(scenario.protocol ?? 'any').padEnd(6)} ${scenario.faults.map(faultLabel).join(',') || 'fault-free'}  ${scenario.description ?? ''}\n`);
      }
    });
}

/** A fault as `chaos list` names it: its kind, and whether a crash loses the disk. */
function faultLabel(fault: FaultSpec): string {
  return fault.kind === 'crash' && fault.amnesia === true ? 'crash(amnesia)' : fault.kind;
}

interface GenerateFlags {
  corpus?: string;
  count: number;
  seed: number;
  protocol?: Protocol;
  out?: string;
  durationMs?: number;
  limit?: number;
  workers: number;
  ingest: boolean;
  run: boolean;
  json?: boolean;
}

async function generateFromSpec(options: GenerateFlags & { corpus: string }, config: LatticeConfig, logger: Logger): Promise<void> {
  const spec = loadCorpusSpecFile(options.corpus, { ...(options.durationMs !== undefined && { durationMs: options.durationMs }) });
  const all = planCorpus(spec).filter((run) => options.protocol === undefined || run.protocol === options.protocol);
  const jobs = options.limit === undefined ? all : all.slice(0, options.limit);
  const out = resolve(options.out ?? join('.lattice', 'corpus', spec.name));
  const write = (text: string) => process.stdout.write(text);
  if (!options.run) {
    writeCorpusFiles(out, jobs);
    const plan = summarizePlan(jobs);
    writeManifest(out, { corpus: spec.name, source: options.corpus, spec, runs: jobs.length, plan });
    write(options.json ? `${JSON.stringify({ corpus: spec.name, out, runs: jobs.length, plan })}\n` : `${planText(spec, options.corpus, plan, out)}\n`);
    return;
  }
  // Worker processes simulate and count; the records stay in them, so only without ingesting
  // (the in-process transport cannot reach another process's collector).
  if (options.workers > 1 && options.ingest) process.stderr.write(`--workers ${options.workers} applies with --no-ingest (records stay in the worker processes); ingesting runs one at a time\n`);
  const pool = options.workers > 1 && !options.ingest ? new RunPool({ workers: options.workers }) : undefined;
  const censusDir = pool === undefined ? undefined : mkdtempSync(join(tmpdir(), 'lattice-census-'));
  let result: Awaited<ReturnType<typeof generateCorpus>>;
  try {
    result = await generateCorpus({
      spec,
      source: options.corpus,
      jobs,
      out,
      json: options.json === true,
      ...(options.ingest && { openPipeline: () => Pipeline.open(config, logger) }),
      ...(pool !== undefined && censusDir !== undefined && { runner: poolRunner(pool, censusDir) }),
      write,
    });
  } finally {
    await pool?.close();
    if (censusDir !== undefined) rmSync(censusDir, { recursive: true, force: true });
  }
  const { report, store } = result;
  if (options.json) {
    const { outcomes, ...totals } = report;
    write(`${JSON.stringify({ corpus: spec.name, out, runs: jobs.length, plan: summarizePlan(jobs), ...totals, failed: report.failed.map((r) => r.replay), ...(store !== undefined && { store }), outcomes: outcomes.map(({ census: _census, ...rest }) => rest) })}\n`);
  }
  if (report.failed.length > 0) process.exitCode = 1;
}

/** The `--count/--seed` form: short runs of overlapping faults (generateScenarios). */
async function generateLegacy(options: GenerateFlags, config: LatticeConfig, logger: Logger): Promise<void> {
  const protocolName = options.protocol ?? 'pbft';
  const out = resolve(options.out ?? join('.lattice', 'corpus'));
  mkdirSync(out, { recursive: true });
  const corpus = generateScenarios({ count: options.count, seed: options.seed, protocol: protocolName, ...(options.durationMs !== undefined && { durationMs: options.durationMs }) });
  const labels = corpus.map(({ scenario, labels }) => ({ scenario: scenario.name, file: `${scenario.name}.yaml`, ...labels }));
  for (const { scenario } of corpus) writeFileSync(join(out, `${scenario.name}.yaml`), toYaml(scenario));
  writeFileSync(join(out, 'labels.json'), `${JSON.stringify(labels, null, 2)}\n`);
  if (!options.run) {
    process.stdout.write(options.json ? `${JSON.stringify({ out, scenarios: corpus.length })}\n` : `wrote ${corpus.length} scenarios and labels.json to ${out}\n`);
    return;
  }
  const protocol = protocolByName(protocolName);
  const pipeline = options.ingest ? await Pipeline.open(config, logger) : undefined;
  const progress = options.json ? undefined : progressReporter({ label: 'corpus' });
  const runs: ReturnType<typeof runSummary>[] = [];
  // One census for the whole corpus: these runs are short (nodes × seconds / 100 ms cells each).
  const census = new WindowCensus();
  let records = 0;
  try {
    progress?.start(corpus.length);
    for (const [i, { scenario }] of corpus.entries()) {
      const seed = options.seed * 1_000 + i;
      let summary: ReturnType<typeof runSummary>;
      if (pipeline === undefined) summary = runSummary(await runSimulation({ protocol, scenario, seed, sink: countingSink(census) }));
      else {
        const { result, stored } = await pipeline.ingestRun(protocol, scenario, seed, { wrapSink: (sink) => countingSink(census, sink) });
        summary = runSummary(result, stored);
      }
      records += summary.records;
      runs.push(summary);
      progress?.update({ done: i + 1, total: corpus.length, records, failed: runs.filter((r) => !r.ok).length });
    }
  } finally {
    progress?.stop();
    await pipeline?.close();
  }
  const failed = runs.filter((r) => !r.ok);
  const where = pipeline === undefined ? 'simulated, not ingested (--no-ingest)' : `ingested into ${pipeline.store.location}`;
  const counts = census.counts();
  const summary = { out, scenarios: corpus.length, records, failed: failed.map((r) => r.replay), ...(pipeline !== undefined && { store: pipeline.store.location }), census: counts };
  process.stdout.write(
    options.json ? `${JSON.stringify({ ...summary, runs })}\n` : `\n${formatCensus(counts)}\n\n${corpus.length} runs, ${records} records ${where}; scenarios in ${out}\n${failed.map((r) => `FAILED: ${r.replay}`).join('\n')}\n`,
  );
  if (failed.length > 0) process.exitCode = 1;
}
