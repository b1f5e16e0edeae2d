/**
 * Robust z: the scale is 1.4826·MAD (MeanAD when the MAD is 0, then floored), loads are binned on
 * training quantiles so a busy window is compared with busy training windows, contributions name
 * the feature that moved, fitting is deterministic, and save → load gives identical scores.
 */
import { describe, expect, it } from 'vitest';
import { LatticeError } from '../../core/errors.ts';
import { featureNames } from '../../store/feature-registry.ts';
import { windowScoreOf } from '../../models/detector.ts';
import { createMatrix, type FeatureMatrix } from '../../models/matrix.ts';
import { RobustZDetector, binOf, loadEdges, median, robustScale, validateRobustZOptions } from '../../models/robust-z.ts';
import { createRng, syntheticMatrix } from './support.ts';

const names = featureNames('cluster');
const col = (name: string) => names.indexOf(name);

/** A copy of one row of `m` with some features set. */
function withRow(m: FeatureMatrix, row: number, set: Record<string, number>): FeatureMatrix {
  const cols = names.length;
  const values = Float64Array.from(m.values.subarray(row * cols, (row + 1) * cols));
  for (const [k, v] of Object.entries(set)) values[col(k)] = v;
  return createMatrix({ ...m, values, contextIds: Uint16Array.of(m.contextIds[row]!), seriesIds: Uint32Array.of(m.seriesIds[row]!), windowStartMs: Float64Array.of(m.windowStartMs[row]!) });
}

describe('robust statistics', () => {
  it('median, 1.4826·MAD, the MeanAD fallback and the floors', () => {
    expect(median(Float64Array.of(3, 1, 2))).toBe(2);
    expect(median(Float64Array.of(4, 1, 3, 2))).toBe(2.5);
    // |x − 3| = 2, 1, 0, 1, 2 → MAD 1.
    expect(robustScale(Float64Array.of(1, 2, 3, 4, 5), { scale_floor_rel: 0, scale_floor_abs: 1e-9 })).toEqual({ med: 3, scale: 1.4826 });
    // MAD 0 (most values equal): 1.253314 · mean |x − 0| = 1.253314 · 10/5.
    const meanAd = robustScale(Float64Array.of(0, 0, 0, 0, 10), { scale_floor_rel: 0, scale_floor_abs: 1e-9 });
    expect(meanAd.med).toBe(0);
    expect(meanAd.scale).toBeCloseTo(1.253314 * 2, 12);
    // A constant feature takes the absolute floor; a large median the relative one.
    expect(robustScale(Float64Array.of(0, 0, 0), { scale_floor_rel: 0.01, scale_floor_abs: 0.05 }).scale).toBe(0.05);
    expect(robustScale(Float64Array.of(1000, 1000, 1000.5), { scale_floor_rel: 0.01, scale_floor_abs: 0.05 }).scale).toBe(10);
  });

  it('load bins: quantile cuts, small bins merged, loads past the range in the edge bins', () => {
    const loads = Array.from({ length: 100 }, (_, i) => i);
    expect(loadEdges(loads, 4, 10)).toEqual([25, 50, 75]);
    expect(loadEdges(loads, 4, 30)).toEqual([50]);
    expect(loadEdges(loads, 4, 101)).toEqual([]);
    expect(loadEdges(new Array(50).fill(7), 4, 5)).toEqual([]);
    expect(binOf([25, 50, 75], -1)).toBe(0);
    expect(binOf([25, 50, 75], 50)).toBe(2);
    expect(binOf([25, 50, 75], 1e9)).toBe(3);
  });

  it('refuses bad options naming the field', () => {
    expect(() => validateRobustZOptions({ load_covariate: 'transitions' })).toThrow(/load_covariate: transitions is not a covariate/);
    expect(() => validateRobustZOptions({ scale_floor_abs: 0 })).toThrow(/scale_floor_abs: expected a number > 0/);
    expect(() => validateRobustZOptions({ top_k: 0 })).toThrow(/top_k: expected an integer >= 1/);
  });
});

describe('robust z detector', () => {
  const train = syntheticMatrix(createRng(1), 600, { load: (i) => (i % 2 === 0 ? 100 : 1000) });
  const fitted = () => {
    const d = new RobustZDetector('cluster', 100, names, { load_bins: 2 });
    d.fit(train);
    return d;
  };

  it('scores normal windows low and a moved feature high, with that feature as the top contribution', () => {
    const d = fitted();
    const normal = d.score(syntheticMatrix(createRng(2), 200, { load: (i) => (i % 2 === 0 ? 100 : 1000) }));
    const max = Math.max(...normal.scores);
    expect(max).toBeLessThan(10);
    const moved = d.score(withRow(train, 0, { retransmissions: 40 }));
    const w = windowScoreOf(moved, 0);
    expect(w.status).toBe('scored');
    if (w.status !== 'scored') return;
    expect(w.score).toBeGreaterThan(3 * max);
    const [top] = Object.entries(w.contributions).sort((a, b) => b[1] - a[1]);
    expect(top![0]).toBe('retransmissions');
    expect(Object.values(w.contributions).reduce((s, c) => s + c, 0)).toBeCloseTo(1, 9);
    // Covariates are conditioned on, not scored.
    expect(w.contributions.requests_received).toBeUndefined();
  });

  it('conditions on load: a busy window is compared with busy training windows', () => {
    // Mostly quiet training traffic, a fifth of it busy: without bins, busy looks abnormal.
    const mixed = syntheticMatrix(createRng(8), 600, { load: (i) => (i % 5 === 0 ? 1000 : 100) });
    const binned = new RobustZDetector('cluster', 100, names, { load_bins: 5 });
    binned.fit(mixed);
    const pooled = new RobustZDetector('cluster', 100, names, { load_bins: 1 });
    pooled.fit(mixed);
    const busy = syntheticMatrix(createRng(3), 100, { load: () => 1000 });
    const medianOf = (xs: Float64Array) => median(xs);
    expect(medianOf(binned.score(busy).scores)).toBeLessThan(3);
    // Without bins the same windows sit far from the pooled median of two loads.
    expect(medianOf(pooled.score(busy).scores)).toBeGreaterThan(10 * medianOf(binned.score(busy).scores));
  });

  it('fits deterministically and save → load gives identical scores', () => {
    const probe = syntheticMatrix(createRng(4), 50, { load: () => 400 });
    const a = fitted();
    const b = fitted();
    expect(Array.from(a.score(probe).scores)).toEqual(Array.from(b.score(probe).scores));
    const state = JSON.parse(JSON.stringify(a.save()));
    const loaded = RobustZDetector.load(state);
    expect(Array.from(loaded.score(probe).scores)).toEqual(Array.from(a.score(probe).scores));
    expect(Array.from(loaded.score(probe).contributions)).toEqual(Array.from(a.score(probe).contributions));
    expect(loaded.save()).toEqual(a.save());
  });

  it('combines |z| by max (default) or by the mean of the top k', () => {
    const max = fitted();
    const topk = new RobustZDetector('cluster', 100, names, { load_bins: 2, combine: 'top_k_mean', top_k: 2 });
    topk.fit(train);
    const row = withRow(train, 0, { retransmissions: 40 });
    expect(topk.score(row).scores[0]!).toBeLessThan(max.score(row).scores[0]!);
    expect(topk.score(row).scores[0]!).toBeGreaterThan(max.score(row).scores[0]! / 2 - 1e-9);
  });

  it('throws on bugs: scoring unfitted, other columns, an unknown context, too few windows', () => {
    const d = new RobustZDetector('cluster', 100, names);
    expect(() => d.score(train)).toThrow(LatticeError);
    const f = fitted();
    const other = createMatrix({ ...train, contexts: ['epaxos/n5'] });
    expect(() => f.score(other)).toThrow(/context epaxos\/n5 was not in training \(fitted on pbft\/n4\)/);
    const node = syntheticMatrix(createRng(5), 40, { level: 'node' });
    expect(() => f.score(node)).toThrow(/featureNames: expected the detector's/);
    expect(() => new RobustZDetector('cluster', 100, names).fit(syntheticMatrix(createRng(6), 10))).toThrow(/context pbft\/n4: 10 normal windows, expected at least 30/);
  });

  it('works at node level and keeps contexts apart', () => {
    const nodeNames = featureNames('node');
    const m = syntheticMatrix(createRng(7), 400, { level: 'node', contexts: ['pbft/n4', 'epaxos/n5'] });
    const d = new RobustZDetector('node', 100, nodeNames);
    d.fit(m);
    expect([...d.contexts].sort()).toEqual(['epaxos/n5', 'pbft/n4']);
    const b = d.score(m);
    expect(b.scores.every((s) => Number.isFinite(s) && s >= 0)).toBe(true);
    expect(b.scored.every((s) => s === 1)).toBe(true);
  });
});
