/**
 * The one detector interface. A detector is fitted on a feature matrix of normal windows, then
 * scores windows: for each, an anomaly score (higher is more anomalous; comparable across the
 * contexts it was fitted on) and per-feature contributions (each feature's share of the
 * evidence, summing to 1 or all 0), which root cause reads as evidence. State is a plain
 * JSON-serialisable value (`save`), from which the detector's factory rebuilds an identical one
 * (`load`); artefact.ts wraps it with versioning and a checksum.
 *
 * Expected outcomes are values: a window the detector cannot score yet (a sequence model before
 * it has seen enough windows) is `warming_up`, not an error. Bugs — scoring before fitting,
 * features that do not match the fitted ones, an unknown context — throw (core/errors.ts).
 */
import type { Rng } from '../core/rng.ts';
import type { FeatureLevel } from '../store/feature-registry.ts';
import type { FeatureMatrix } from './matrix.ts';

export type WindowStatus = 'scored' | 'warming_up';

/** One window's outcome. */
export type WindowScore =
  | { readonly status: 'scored'; readonly score: number; readonly contributions: Readonly<Record<string, number>> }
  | { readonly status: 'warming_up'; readonly reason: string };

/** Many windows' outcomes, as typed arrays (the batch path: millions of windows). */
export interface ScoreBatch {
  readonly rows: number;
  readonly featureNames: readonly string[];
  /** Per row; NaN where the row is warming up. */
  readonly scores: Float64Array;
  /** Per row: 1 scored, 0 warming up. */
  readonly scored: Uint8Array;
  /** rows × featureNames.length, row-major; 0 where warming up. */
  readonly contributions: Float64Array;
}

export interface FitOptions {
  /** Randomness for detectors that need it (robust z does not). */
  readonly rng?: Rng;
}

/** A detector's serialisable state: JSON values only (no typed arrays, no NaN or infinities). */
export type DetectorState = { readonly kind: string; readonly [key: string]: unknown };

export interface Detector {
  readonly kind: string;
  readonly level: FeatureLevel;
  readonly windowMs: number;
  /** The columns it expects, in order. */
  readonly featureNames: readonly string[];
  /** The contexts it was fitted on (empty before fit). */
  readonly contexts: readonly string[];
  readonly fitted: boolean;
  /** Fits on normal windows only (the caller selects them). */
  fit(windows: FeatureMatrix, options?: FitOptions): void;
  score(windows: FeatureMatrix): ScoreBatch;
  save(): DetectorState;
}

export interface DetectorFactory<Options = unknown> {
  readonly kind: string;
  create(init: { level: FeatureLevel; windowMs: number; featureNames: readonly string[]; options?: Options }): Detector;
  load(state: DetectorState): Detector;
}

/** One row of a batch as a WindowScore (contributions by feature name, zeros left out). */
export function windowScoreOf(batch: ScoreBatch, row: number, reason = 'not enough windows yet'): WindowScore {
  if (batch.scored[row] !== 1) return { status: 'warming_up', reason };
  const cols = batch.featureNames.length;
  const contributions: Record<string, number> = {};
  for (let j = 0; j < cols; j++) {
    const c = batch.contributions[row * cols + j]!;
    if (c !== 0) contributions[batch.featureNames[j]!] = c;
  }
  return { status: 'scored', score: batch.scores[row]!, contributions };
}

/** The features with the largest contributions of one row, largest first. */
export function topContributions(batch: ScoreBatch, row: number, k: number): { feature: string; share: number }[] {
  const cols = batch.featureNames.length;
  const out: { feature: string; share: number }[] = [];
  for (let j = 0; j < cols; j++) out.push({ feature: batch.featureNames[j]!, share: batch.contributions[row * cols + j]! });
  return out.sort((a, b) => b.share - a.share).slice(0, k);
}
