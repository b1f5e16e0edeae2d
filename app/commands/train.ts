/**
 * `lattice train --corpus FILE`: reads the corpus's runs from the store (features and labels as
 * Arrow), fits a detector on their normal windows, places its thresholds on the calibration
 * corpus's runs as a budget of false alarms per fault-free hour, and writes a versioned,
 * checksummed artefact. Progress with ETA on the long step (reading runs).
 */
import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import type { LatticeConfig } from '../../core/config.ts';
import { systemClock } from '../../core/clock.ts';
import { ValidationError } from '../../core/errors.ts';
import type { Protocol } from '../../core/trace-schema.ts';
import { loadCorpusSpecFile } from '../../cluster/chaos/corpus-spec.ts';
import { planCorpus } from '../../cluster/chaos/generate.ts';
import { openStore, type Store } from '../../store/client.ts';
import { migrate } from '../../store/migrations.ts';
import type { FeatureLevel } from '../../store/feature-registry.ts';
import { featureNames } from '../../store/feature-registry.ts';
import { detectorFactory, writeArtefact } from '../../models/artefact.ts';
import { assertRunsStored, readDataset, type Dataset, type RunRef } from '../../training/read.ts';
import { train } from '../../training/train.ts';
import { contextOf, integerOption } from '../cli.ts';
import { progressReporter } from '../corpus-progress.ts';

export const DEFAULT_CALIBRATION = 'training/corpus/calibration.yaml';

export interface CorpusRuns {
  readonly name: string;
  readonly file: string;
  readonly runs: RunRef[];
}

/** The runs a corpus file plans (the first `limit`, one protocol's), as the store names them. */
export function corpusRuns(file: string, options: { limit?: number; protocol?: Protocol } = {}): CorpusRuns {
  const spec = loadCorpusSpecFile(file);
  const all = planCorpus(spec).filter((r) => options.protocol === undefined || r.protocol === options.protocol);
  const picked = options.limit === undefined ? all : all.slice(0, options.limit);
  return { name: spec.name, file, runs: picked.map((r) => ({ runId: r.labels.run_id, protocol: r.protocol, nodes: r.labels.nodes })) };
}

export function generateHint(corpus: CorpusRuns, limit?: number): string {
  return `run \`lattice chaos generate --corpus ${corpus.file}${limit === undefined ? '' : ` --limit ${limit}`}\` first (it simulates the runs and ingests them into this store)`;
}

/** Opens the configured store with its schema in place (idempotent), so a fresh store reads as empty rather than failing. */
export async function openMigratedStore(config: LatticeConfig['store']): Promise<Store> {
  const store = await openStore(config);
  try {
    await migrate(store);
  } catch (error) {
    await store.close().catch(() => undefined);
    throw error;
  }
  return store;
}

/** Reads a corpus's runs with a progress display (a bar on a terminal, lines elsewhere). */
export async function readCorpus(store: Store, corpus: CorpusRuns, level: FeatureLevel, windowMs: number, quiet: boolean, limit?: number): Promise<Dataset> {
  await assertRunsStored(store, corpus.runs, level, windowMs, generateHint(corpus, limit));
  const progress = quiet ? undefined : progressReporter({ label: `reading ${corpus.name}` });
  try {
    progress?.start(corpus.runs.length);
    return await readDataset(store, corpus.runs, { level, windowMs, onRun: (done, total, rows) => progress?.update({ done, total, records: rows, failed: 0 }) });
  } finally {
    progress?.stop();
  }
}

interface TrainFlags {
  corpus: string;
  calibration: string;
  model: string;
  out: string;
  seed: number;
  level: FeatureLevel;
  limit?: number;
  calibrationLimit?: number;
  protocol?: Protocol;
  budget: number;
  alertWindows: number;
  graceMs: number;
  json?: boolean;
}

export function registerTrainCommand(program: Command): void {
  program
    .command('train')
    .description('fit a detector on a corpus\'s runs in the store, calibrate its thresholds on the calibration corpus (false alarms per fault-free hour), and write a versioned, checksummed artefact')
    .requiredOption('--corpus <file>', 'training corpus specification (e.g. training/corpus/train.yaml); its runs must be in the store')
    .option('--calibration <file>', 'calibration corpus specification', DEFAULT_CALIBRATION)
    .addOption(new Option('--model <kind>', 'detector').choices(['robust-z', 'isolation-forest']).default('robust-z'))
    .option('-o, --out <dir>', 'where the artefact is written', '.lattice/models')
    .option('-s, --seed <n>', 'training seed (the random baseline uses it too)', integerOption('--seed'), 1)
    .addOption(new Option('--level <level>', 'window level').choices(['cluster', 'node']).default('cluster'))
    .option('--limit <n>', 'only the first N runs of the training corpus (as `chaos generate --limit`)', integerOption('--limit', 1))
    .option('--calibration-limit <n>', 'only the first N runs of the calibration corpus', integerOption('--calibration-limit', 1))
    .addOption(new Option('-p, --protocol <name>', 'only this protocol\'s runs').choices(['pbft', 'epaxos']))
    .option('--budget <n>', 'false alarms per fault-free hour the thresholds allow on the calibration runs', Number, 5)
    .option('--alert-windows <n>', 'consecutive windows above the threshold that make an alert', integerOption('--alert-windows', 1), 2)
    .option('--grace-ms <n>', 'after an episode, an alert within this still detects it', integerOption('--grace-ms'), 500)
    .option('--json', 'print a JSON summary')
    .action(async (options: TrainFlags, command: Command) => {
      const { config } = contextOf(command);
      if (!(options.budget >= 0)) throw new ValidationError('command line', [{ path: '--budget', message: `expected a number >= 0, got ${options.budget}` }]);
      await runTrain(options, config);
    });
}

async function runTrain(options: TrainFlags, config: LatticeConfig): Promise<void> {
  const windowMs = config.features.window_ms;
  const factory = detectorFactory(options.model);
  if (factory === undefined) throw new ValidationError('command line', [{ path: '--model', message: `unknown model ${options.model}` }]);
  const trainRuns = corpusRuns(options.corpus, { ...(options.limit !== undefined && { limit: options.limit }), ...(options.protocol !== undefined && { protocol: options.protocol }) });
  const calRuns = corpusRuns(options.calibration, { ...(options.calibrationLimit !== undefined && { limit: options.calibrationLimit }), ...(options.protocol !== undefined && { protocol: options.protocol }) });
  const quiet = options.json === true;
  const store = await openMigratedStore(config.store);
  let result: ReturnType<typeof train>;
  const started = performance.now();
  try {
    const trainSet = await readCorpus(store, trainRuns, options.level, windowMs, quiet, options.limit);
    const calibration = await readCorpus(store, calRuns, options.level, windowMs, quiet, options.calibrationLimit);
    const detector = factory.create({ level: options.level, windowMs, featureNames: featureNames(options.level) });
    result = train({
      detector,
      train: trainSet,
      calibration,
      corpus: { train: trainRuns.name, calibration: calRuns.name },
      seed: options.seed,
      clock: systemClock,
      calibrationOptions: { budget_false_alarms_per_hour: options.budget, alert_windows: options.alertWindows, grace_ms: options.graceMs },
    });
  } finally {
    await store.close();
  }
  const path = writeArtefact(resolve(options.out), result.artefact);
  const { artefact } = result;
  const summary = {
    artefact: path,
    kind: artefact.kind,
    version: artefact.version,
    level: artefact.level,
    window_ms: artefact.window_ms,
    training_runs: artefact.training.runs.length,
    fit_windows: result.fitWindows,
    calibration_runs: artefact.calibration.runs.length,
    thresholds: artefact.thresholds,
    calibration: Object.fromEntries(Object.entries(result.calibration).map(([k, m]) => [k, { f1: m.f1, recall: m.recall, precision: m.precision, false_alarms_per_hour: m.false_alarms_per_hour, delay_ms_p50: m.delay_ms_p50 }])),
    wall_ms: Math.round(performance.now() - started),
  };
  if (options.json) {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return;
  }
  process.stdout.write(`${artefact.kind} ${artefact.version} (${artefact.level} level, ${artefact.window_ms} ms) fitted on ${result.fitWindows.toLocaleString('en-US')} normal windows of ${summary.training_runs} runs\n`);
  for (const [key, t] of Object.entries(artefact.thresholds)) {
    const m = result.calibration[key];
    process.stdout.write(`  ${key}: threshold ${t.threshold.toPrecision(6)} (${t.alert_windows} window${t.alert_windows === 1 ? '' : 's'}), ${t.calibration_false_alarms} false alarms in ${(t.calibration_fault_free_hours * 60).toFixed(1)} fault-free minutes of ${t.calibration_runs} calibration runs (budget ${t.budget_false_alarms_per_hour}/h); calibration event F1 ${m?.f1.toFixed(3)}\n`);
  }
  process.stdout.write(`written ${path}\n`);
}
