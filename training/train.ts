/**
 * Training, composed: fit a detector on the normal windows of the training runs, place its
 * thresholds on the calibration runs (a budget of false alarms per fault-free hour, per context),
 * place the random baseline's at the same operating point, and build the artefact.
 *
 * Fitted on: every training run, faulty ones included, with every window labelled faulty or
 * recovering left out (and partial or unlabelled windows, dropped when read). Faulty runs'
 * normal stretches add load levels and noise that fault-free runs alone cover less well, and
 * the labels say exactly which windows to leave out, so nothing abnormal is fitted as normal.
 */
import type { Clock } from '../core/clock.ts';
import { ValidationError } from '../core/errors.ts';
import { createRng } from '../core/rng.ts';
import type { Detector } from '../models/detector.ts';
import { buildArtefact, type Artefact, type ThresholdEntry } from '../models/artefact.ts';
import { contextKey, selectRows } from '../models/matrix.ts';
import { randomScores } from './baseline.ts';
import { calibrateThreshold, CALIBRATION_DEFAULTS, type CalibrationOptions } from './calibrate.ts';
import { eventMetrics, type EventMetrics } from './event-scoring.ts';
import { normalMask, type Dataset } from './read.ts';
import { seriesOf, type RunSeries } from './series.ts';

export const FIT_ON = 'normal windows of every training run (fault_active = 0 and recovering = 0; partial and unlabelled windows dropped)';

export interface TrainInput {
  readonly detector: Detector;
  readonly train: Dataset;
  readonly calibration: Dataset;
  readonly corpus: { readonly train: string; readonly calibration: string };
  readonly seed: number;
  readonly clock: Clock;
  readonly calibrationOptions?: Partial<CalibrationOptions>;
}

export interface TrainResult {
  readonly artefact: Artefact;
  readonly fitWindows: number;
  readonly calibration: Readonly<Record<string, EventMetrics>>;
}

/** Series grouped by the context of their run. */
export function seriesByContext(dataset: Dataset, series: readonly RunSeries[]): Map<string, RunSeries[]> {
  const contextOf = new Map(dataset.runs.map((r) => [r.runId, contextKey(r.protocol, r.nodes)]));
  const groups = new Map<string, RunSeries[]>();
  for (const s of series) {
    const key = contextOf.get(s.runId)!;
    groups.set(key, [...(groups.get(key) ?? []), s]);
  }
  return groups;
}

export function calibrateByContext(dataset: Dataset, scores: Float64Array, options: Partial<CalibrationOptions>): Record<string, ThresholdEntry> {
  const thresholds: Record<string, ThresholdEntry> = {};
  for (const [key, group] of seriesByContext(dataset, seriesOf(dataset, scores))) {
    const c = calibrateThreshold(group, options);
    thresholds[key] = { threshold: c.threshold, alert_windows: c.alert_windows, budget_false_alarms_per_hour: c.budget_false_alarms_per_hour, calibration_false_alarms: c.false_alarms, calibration_fault_free_hours: c.fault_free_hours, calibration_runs: c.runs };
  }
  return thresholds;
}

export function train(input: TrainInput): TrainResult {
  const { detector, train: trainSet, calibration } = input;
  const fitSet = selectRows(trainSet.matrix, normalMask(trainSet.labels));
  detector.fit(fitSet, { rng: createRng(input.seed).fork(`fit/${detector.kind}`) });
  const unknown = calibration.matrix.contexts.filter((c) => !detector.contexts.includes(c));
  if (unknown.length > 0) throw new ValidationError('calibration runs', [{ path: 'contexts', message: `${unknown.join(', ')} not in the training runs (trained on ${detector.contexts.join(', ')})` }]);
  const options = { ...CALIBRATION_DEFAULTS, ...input.calibrationOptions };
  const scores = detector.score(calibration.matrix).scores;
  const thresholds = calibrateByContext(calibration, scores, options);
  const randomThresholds = calibrateByContext(calibration, randomScores(calibration, input.seed), options);
  const metrics: Record<string, EventMetrics> = {};
  for (const [key, group] of seriesByContext(calibration, seriesOf(calibration, scores))) metrics[key] = eventMetrics(group, thresholds[key]!, options);
  const artefact = buildArtefact({
    detector,
    clock: input.clock,
    thresholds,
    training: { corpus: input.corpus.train, runs: trainSet.runs.map((r) => r.runId), seed: input.seed, windows: fitSet.rows, fit_on: FIT_ON },
    calibration: { corpus: input.corpus.calibration, runs: calibration.runs.map((r) => r.runId) },
    baselines: { random: { seed: input.seed, thresholds: randomThresholds } },
    metrics: { calibration: metrics, grace_ms: options.grace_ms },
  });
  return { artefact, fitWindows: fitSet.rows, calibration: metrics };
}
