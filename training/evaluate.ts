/**
 * Evaluation of a trained model on runs it never saw, at the operating point fixed in its
 * artefact (thresholds placed on calibration runs before any test run is read): event metrics
 * per protocol, and the random baseline at its own calibrated thresholds on the same windows.
 */
import { ValidationError } from '../core/errors.ts';
import type { Artefact, ThresholdEntry } from '../models/artefact.ts';
import type { Detector } from '../models/detector.ts';
import { contextKey } from '../models/matrix.ts';
import { randomScores } from './baseline.ts';
import { eventMetrics, type EventMetrics } from './event-scoring.ts';
import type { Dataset } from './read.ts';
import { seriesOf, type RunSeries } from './series.ts';

export interface ProtocolReport extends EventMetrics {
  readonly baselines: Readonly<Record<string, EventMetrics>>;
}

export interface EvaluationReport {
  readonly model: { readonly kind: string; readonly version: string; readonly level: string; readonly window_ms: number };
  readonly grace_ms: number;
  readonly by_protocol: Readonly<Record<string, ProtocolReport>>;
}

function ruleFor(dataset: Dataset, thresholds: Readonly<Record<string, ThresholdEntry>>, what: string) {
  const contextOf = new Map(dataset.runs.map((r) => [r.runId, contextKey(r.protocol, r.nodes)]));
  return (s: RunSeries) => {
    const key = contextOf.get(s.runId)!;
    const entry = thresholds[key];
    if (entry === undefined) throw new ValidationError('evaluation runs', [{ path: s.runId, message: `context ${key} has no ${what} threshold (calibrated: ${Object.keys(thresholds).join(', ')})` }]);
    return { threshold: entry.threshold, alert_windows: entry.alert_windows };
  };
}

export function evaluate(artefact: Artefact, detector: Detector, dataset: Dataset): EvaluationReport {
  const graceMs = typeof artefact.metrics.grace_ms === 'number' ? artefact.metrics.grace_ms : 500;
  const options = { grace_ms: graceMs };
  const series = seriesOf(dataset, detector.score(dataset.matrix).scores);
  const random = artefact.baselines.random;
  const randomSeries = random === undefined ? undefined : seriesOf(dataset, randomScores(dataset, random.seed));
  const protocols = [...new Set(dataset.runs.map((r) => r.protocol))].sort();
  const byProtocol: Record<string, ProtocolReport> = {};
  for (const protocol of protocols) {
    const pick = (all: readonly RunSeries[]) => all.filter((s) => s.protocol === protocol);
    const baselines: Record<string, EventMetrics> = {};
    if (random !== undefined && randomSeries !== undefined) baselines.random = eventMetrics(pick(randomSeries), ruleFor(dataset, random.thresholds, 'random-baseline'), options);
    byProtocol[protocol] = { ...eventMetrics(pick(series), ruleFor(dataset, artefact.thresholds, 'model'), options), baselines };
  }
  return { model: { kind: artefact.kind, version: artefact.version, level: artefact.level, window_ms: artefact.window_ms }, grace_ms: graceMs, by_protocol: byProtocol };
}
