/**
 * Threshold calibration as a budget of false alarms per fault-free hour (default 5), on
 * calibration runs only (never the test runs), with the alerts and the false-alarm rule of
 * event-scoring.ts. The allowed number of false alarms is ⌊budget × fault-free hours⌋: with
 * less than 1/budget hour of fault-free calibration time that is 0, and the threshold sits at
 * the largest fault-free score (alerts need a score strictly above it).
 *
 * Raising a threshold can split one alert into two, so the count is not monotone in the
 * threshold; the scan goes down from the top through the candidate thresholds (the scores of
 * fault-free windows) and stops at the first one over the allowed count, so every candidate at
 * or above the chosen one honours the budget on the calibration runs.
 */
import { ValidationError, invariant } from '../core/errors.ts';
import { EVENT_SCORING_DEFAULTS, episodesOf, scoreSeries, type AlertRule, type EventScoringOptions } from './event-scoring.ts';
import type { RunSeries } from './series.ts';

export interface CalibrationOptions extends EventScoringOptions {
  readonly budget_false_alarms_per_hour: number;
  readonly alert_windows: number;
  /** The coarse scan tries at most this many thresholds (spread by rank); a fine scan follows between the two that bracket the budget. */
  readonly candidates_max: number;
}

export const CALIBRATION_DEFAULTS: CalibrationOptions = { ...EVENT_SCORING_DEFAULTS, budget_false_alarms_per_hour: 5, alert_windows: 2, candidates_max: 4_000 };

export interface Calibration {
  readonly threshold: number;
  readonly alert_windows: number;
  readonly budget_false_alarms_per_hour: number;
  readonly allowed_false_alarms: number;
  readonly false_alarms: number;
  readonly fault_free_hours: number;
  readonly runs: number;
}

export function calibrateThreshold(series: readonly RunSeries[], input: Partial<CalibrationOptions> = {}): Calibration {
  const options = { ...CALIBRATION_DEFAULTS, ...input };
  if (!(options.budget_false_alarms_per_hour >= 0)) throw new ValidationError('calibration options', [{ path: 'budget_false_alarms_per_hour', message: `expected a number >= 0, got ${options.budget_false_alarms_per_hour}` }]);
  if (series.length === 0) throw new ValidationError('calibration', [{ path: 'runs', message: 'no calibration runs' }]);
  const count = (threshold: number) => {
    const rule: AlertRule = { threshold, alert_windows: options.alert_windows };
    let falseAlarms = 0;
    let freeMs = 0;
    for (const s of series) {
      const o = scoreSeries(s, rule, options);
      falseAlarms += o.falseAlarms;
      freeMs += o.faultFreeMs;
    }
    return { falseAlarms, freeMs };
  };
  const freeMs = count(Number.POSITIVE_INFINITY).freeMs;
  if (freeMs === 0) throw new ValidationError('calibration', [{ path: 'runs', message: 'the calibration runs hold no fault-free windows' }]);
  const hours = freeMs / 3_600_000;
  const allowed = Math.floor(options.budget_false_alarms_per_hour * hours + 1e-9);
  // Coarse scan over candidates thinned by rank, then every distinct score between the last one
  // that held and the first one that broke the budget.
  const distinct = faultFreeScores(series, options);
  invariant(distinct.length > 0, 'calibration: no fault-free window scores');
  const step = Math.max(1, Math.ceil(distinct.length / options.candidates_max));
  let chosenAt = 0;
  let chosenAlarms = count(distinct[0]!).falseAlarms;
  invariant(chosenAlarms === 0, 'calibration: alerts above the largest fault-free score');
  let brokeAt = distinct.length;
  for (let i = step; i < distinct.length; i += step) {
    const { falseAlarms } = count(distinct[i]!);
    if (falseAlarms > allowed) {
      brokeAt = i;
      break;
    }
    chosenAt = i;
    chosenAlarms = falseAlarms;
  }
  for (let i = chosenAt + 1; i < Math.min(brokeAt, distinct.length); i++) {
    const { falseAlarms } = count(distinct[i]!);
    if (falseAlarms > allowed) break;
    chosenAt = i;
    chosenAlarms = falseAlarms;
  }
  const chosen = distinct[chosenAt]!;
  return { threshold: chosen, alert_windows: options.alert_windows, budget_false_alarms_per_hour: options.budget_false_alarms_per_hour, allowed_false_alarms: allowed, false_alarms: chosenAlarms, fault_free_hours: hours, runs: series.length };
}

/** Distinct scores of windows outside episodes, their graces and recovery, descending. */
function faultFreeScores(series: readonly RunSeries[], options: CalibrationOptions): number[] {
  const values: number[] = [];
  for (const s of series) {
    const episodes = episodesOf(s);
    for (let i = 0; i < s.score.length; i++) {
      if (s.faultActive[i] === 1 || s.recovering[i] === 1 || Number.isNaN(s.score[i]!)) continue;
      const w = s.windowStartMs[i]!;
      if (episodes.some((ep) => w >= ep.endMs && w < ep.endMs + options.grace_ms)) continue;
      values.push(s.score[i]!);
    }
  }
  return [...new Set(values)].sort((a, b) => b - a);
}
