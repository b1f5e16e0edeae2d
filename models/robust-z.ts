/**
 * Robust z-score detector: per context (protocol and cluster size) and per load bin, the median
 * and a robust scale of every scored feature on normal windows; a window's z of feature j is
 * (x_j − median_j) / scale_j in the bin of its load, its score a stated combination of the |z|.
 *
 * - Scale: 1.4826·MAD (consistent with the standard deviation for normal data). When the MAD is
 *   0 (more than half the windows share one value: retransmissions are 0 in almost every normal
 *   window) it falls back to 1.253314·MeanAD (mean absolute deviation from the median; the
 *   modified z-score's fallback, Iglewicz & Hoaglin), and the result is floored at
 *   max(scale_floor_rel·|median|, scale_floor_abs), so a constant feature (0 in every training
 *   window) still scores a deviation by its size instead of dividing by zero.
 * - Values are first transformed (`transform`, default signed log1p; the statistics, floors and
 *   z are in transformed units): normal latencies and counters are heavy-tailed.
 * - Load: windows are binned on one covariate (`load_covariate`, default requests_received, the
 *   offered load) with cut points at training quantiles, fixed at fit; a bin with fewer than
 *   bin_windows_min windows is merged into its neighbour. A window is scored against the bin of
 *   its own load (edge bins take loads beyond the training range), so a busy cluster is compared
 *   with busy training windows. Covariates are not scored themselves.
 * - Score: `max` of the capped |z| (default), or `top_k_mean` (the mean of the k largest).
 *   Contributions: each scored feature's share of Σ|z| (capped), 0 for the others.
 * Deterministic: no randomness.
 */
import { ValidationError, invariant, type FieldError } from '../core/errors.ts';
import { featureSpec, type FeatureLevel } from '../store/feature-registry.ts';
import type { Detector, DetectorFactory, DetectorState, ScoreBatch } from './detector.ts';
import { assertMatrixFits, columnOf, type FeatureMatrix } from './matrix.ts';

export interface RobustZOptions {
  /** Covariate the load bins are cut on. */
  readonly load_covariate: string;
  /** Load bins per context before merging small ones. */
  readonly load_bins: number;
  /** Fewest normal windows a bin (and a context) may be fitted on. */
  readonly bin_windows_min: number;
  /** Scale floor relative to |median| (a share). */
  readonly scale_floor_rel: number;
  /** Absolute scale floor, in each feature's own unit. */
  readonly scale_floor_abs: number;
  /** |z| is capped here, so one wild feature cannot make scores incomparable. */
  readonly z_cap: number;
  readonly combine: 'max' | 'top_k_mean';
  /** k of top_k_mean. */
  readonly top_k: number;
  /**
   * Applied to every value before the statistics: `signed_log1p` (sign(x)·ln(1 + |x|), default)
   * tames the heavy tails of latencies and counters, so the tail of a latency maximum in normal
   * traffic does not outscore a fault's change of a rate; `none` scores raw values.
   */
  readonly transform: 'signed_log1p' | 'none';
  /** Features to score; default every non-covariate column. */
  readonly features?: readonly string[];
}

export const ROBUST_Z_DEFAULTS: RobustZOptions = {
  load_covariate: 'requests_received',
  load_bins: 4,
  bin_windows_min: 30,
  scale_floor_rel: 0.01,
  scale_floor_abs: 0.05,
  transform: 'signed_log1p',
  z_cap: 1_000,
  combine: 'max',
  top_k: 3,
};

export function validateRobustZOptions(input: Partial<RobustZOptions> = {}): RobustZOptions {
  const options = { ...ROBUST_Z_DEFAULTS, ...input };
  const errors: FieldError[] = [];
  const positiveInt = (name: keyof RobustZOptions) => {
    const v = options[name];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) errors.push({ path: name, message: `expected an integer >= 1, got ${String(v)}` });
  };
  positiveInt('load_bins');
  positiveInt('bin_windows_min');
  positiveInt('top_k');
  if (!(options.scale_floor_rel >= 0)) errors.push({ path: 'scale_floor_rel', message: `expected a number >= 0, got ${options.scale_floor_rel}` });
  if (!(options.scale_floor_abs > 0)) errors.push({ path: 'scale_floor_abs', message: `expected a number > 0 (the floor keeps the scale above zero), got ${options.scale_floor_abs}` });
  if (!(options.z_cap > 0)) errors.push({ path: 'z_cap', message: `expected a number > 0, got ${options.z_cap}` });
  if (options.transform !== 'signed_log1p' && options.transform !== 'none') errors.push({ path: 'transform', message: `expected signed_log1p or none, got ${String(options.transform)}` });
  if (options.combine !== 'max' && options.combine !== 'top_k_mean') errors.push({ path: 'combine', message: `expected max or top_k_mean, got ${String(options.combine)}` });
  if (featureSpec(options.load_covariate)?.kind !== 'covariate') errors.push({ path: 'load_covariate', message: `${options.load_covariate} is not a covariate of the feature registry` });
  if (errors.length > 0) throw new ValidationError('robust z options', errors);
  return options;
}

interface BinStats {
  readonly windows: number;
  readonly median: number[];
  readonly scale: number[];
}

interface ContextStats {
  readonly key: string;
  /** Upper bounds (exclusive) of every bin but the last, ascending. */
  readonly edges: number[];
  readonly bins: BinStats[];
}

export interface RobustZState extends DetectorState {
  readonly kind: 'robust-z';
  readonly state_version: 1;
  readonly level: FeatureLevel;
  readonly window_ms: number;
  readonly feature_names: readonly string[];
  readonly options: RobustZOptions;
  readonly scored_features: readonly string[];
  readonly contexts: readonly ContextStats[];
}

const MAD_TO_SD = 1.4826;
const MEAN_AD_TO_SD = 1.253314;

export class RobustZDetector implements Detector {
  readonly kind = 'robust-z';
  readonly options: RobustZOptions;
  private readonly scoredNames: readonly string[];
  private stats = new Map<string, ContextStats>();

  constructor(
    readonly level: FeatureLevel,
    readonly windowMs: number,
    readonly featureNames: readonly string[],
    options: Partial<RobustZOptions> = {},
  ) {
    this.options = validateRobustZOptions(options);
    const scored = this.options.features ?? featureNames.filter((name) => featureSpec(name)?.kind !== 'covariate');
    const unknown = scored.filter((name) => !featureNames.includes(name));
    if (unknown.length > 0) throw new ValidationError('robust z options', [{ path: 'features', message: `not among the detector's features: ${unknown.join(', ')}` }]);
    if (!featureNames.includes(this.options.load_covariate)) throw new ValidationError('robust z options', [{ path: 'load_covariate', message: `${this.options.load_covariate} is not among the detector's features` }]);
    this.scoredNames = scored;
  }

  get contexts(): readonly string[] {
    return [...this.stats.keys()];
  }

  get fitted(): boolean {
    return this.stats.size > 0;
  }

  get scoredFeatures(): readonly string[] {
    return this.scoredNames;
  }

  fit(windows: FeatureMatrix): void {
    assertMatrixFits(windows, this);
    const cols = windows.featureNames.length;
    const loadCol = columnOf(windows, this.options.load_covariate);
    const scoredCols = this.scoredNames.map((name) => columnOf(windows, name));
    const stats = new Map<string, ContextStats>();
    const tf = transformOf(this.options.transform);
    windows.contexts.forEach((key, id) => {
      const rows: number[] = [];
      for (let i = 0; i < windows.rows; i++) if (windows.contextIds[i] === id) rows.push(i);
      if (rows.length === 0) return;
      if (rows.length < this.options.bin_windows_min) {
        throw new ValidationError('robust z training windows', [{ path: `context ${key}`, message: `${rows.length} normal windows, expected at least ${this.options.bin_windows_min} (bin_windows_min)` }]);
      }
      const loads = rows.map((i) => windows.values[i * cols + loadCol]!);
      const edges = loadEdges(loads, this.options.load_bins, this.options.bin_windows_min);
      const byBin: number[][] = edges.map(() => []).concat([[]]);
      rows.forEach((row, k) => byBin[binOf(edges, loads[k]!)]!.push(row));
      const bins = byBin.map((binRows) => {
        invariant(binRows.length >= this.options.bin_windows_min, `robust z: a load bin of ${key} holds ${binRows.length} windows after merging`);
        const median: number[] = [];
        const scale: number[] = [];
        const column = new Float64Array(binRows.length);
        for (const col of scoredCols) {
          binRows.forEach((row, k) => (column[k] = tf(windows.values[row * cols + col]!)));
          const { med, scale: s } = robustScale(column, this.options);
          median.push(med);
          scale.push(s);
        }
        return { windows: binRows.length, median, scale };
      });
      stats.set(key, { key, edges, bins });
    });
    if (stats.size === 0) throw new ValidationError('robust z training windows', [{ path: 'rows', message: 'no windows to fit on' }]);
    this.stats = stats;
  }

  score(windows: FeatureMatrix): ScoreBatch {
    invariant(this.fitted, 'robust z: score() before fit() or load()');
    assertMatrixFits(windows, this);
    const cols = windows.featureNames.length;
    const loadCol = columnOf(windows, this.options.load_covariate);
    const scoredCols = this.scoredNames.map((name) => columnOf(windows, name));
    const contextStats = windows.contexts.map((key) => this.stats.get(key));
    const scores = new Float64Array(windows.rows);
    const contributions = new Float64Array(windows.rows * cols);
    const z = new Float64Array(scoredCols.length);
    const { z_cap: cap, combine, top_k: k } = this.options;
    const tf = transformOf(this.options.transform);
    for (let i = 0; i < windows.rows; i++) {
      const ctx = contextStats[windows.contextIds[i]!];
      if (ctx === undefined) {
        throw new ValidationError('windows to score', [{ path: `row ${i}`, message: `context ${windows.contexts[windows.contextIds[i]!]} was not in training (fitted on ${this.contexts.join(', ')})` }]);
      }
      const bin = ctx.bins[binOf(ctx.edges, windows.values[i * cols + loadCol]!)]!;
      let sum = 0;
      for (let j = 0; j < scoredCols.length; j++) {
        const value = tf(windows.values[i * cols + scoredCols[j]!]!);
        const a = Math.min(cap, Math.abs(value - bin.median[j]!) / bin.scale[j]!);
        z[j] = a;
        sum += a;
      }
      scores[i] = combine === 'max' ? maxOf(z) : topKMean(z, k);
      if (sum > 0) for (let j = 0; j < scoredCols.length; j++) contributions[i * cols + scoredCols[j]!] = z[j]! / sum;
    }
    return { rows: windows.rows, featureNames: windows.featureNames, scores, scored: new Uint8Array(windows.rows).fill(1), contributions };
  }

  save(): RobustZState {
    invariant(this.fitted, 'robust z: save() before fit()');
    // The scored features are saved once, as scored_features (load passes them back as options.features).
    const { features: _features, ...options } = this.options;
    return {
      kind: 'robust-z',
      state_version: 1,
      level: this.level,
      window_ms: this.windowMs,
      feature_names: [...this.featureNames],
      options,
      scored_features: [...this.scoredNames],
      contexts: [...this.stats.values()].map((c) => ({ key: c.key, edges: [...c.edges], bins: c.bins.map((b) => ({ windows: b.windows, median: [...b.median], scale: [...b.scale] })) })),
    };
  }

  /** Rebuilds a fitted detector from save()'s state. */
  static load(state: DetectorState): RobustZDetector {
    const s = state as RobustZState;
    if (s.kind !== 'robust-z' || s.state_version !== 1) throw new ValidationError('robust z state', [{ path: 'kind', message: `expected robust-z state version 1, got ${String(s.kind)} version ${String(s.state_version)}` }]);
    const detector = new RobustZDetector(s.level, s.window_ms, s.feature_names, { ...s.options, features: s.scored_features });
    const n = s.scored_features.length;
    for (const c of s.contexts) {
      invariant(c.bins.length === c.edges.length + 1, `robust z state: context ${c.key} has ${c.bins.length} bins for ${c.edges.length} edges`);
      for (const b of c.bins) invariant(b.median.length === n && b.scale.length === n && b.scale.every((x) => x > 0), `robust z state: a bin of ${c.key} does not hold ${n} medians and positive scales`);
      detector.stats.set(c.key, c);
    }
    return detector;
  }

}

export const robustZFactory: DetectorFactory<Partial<RobustZOptions>> = {
  kind: 'robust-z',
  create: ({ level, windowMs, featureNames, options }) => new RobustZDetector(level, windowMs, featureNames, options),
  load: (state) => RobustZDetector.load(state),
};

/** Median of a copy (the input is left as it is). */
export function median(values: Float64Array): number {
  invariant(values.length > 0, 'median of no values');
  const sorted = Float64Array.from(values).sort();
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The median and the floored robust scale of one feature's values (see the module comment). */
export function robustScale(values: Float64Array, options: Pick<RobustZOptions, 'scale_floor_rel' | 'scale_floor_abs'>): { med: number; scale: number } {
  const med = median(values);
  const dev = values.map((v) => Math.abs(v - med));
  let scale = MAD_TO_SD * median(dev);
  if (scale === 0) {
    let sum = 0;
    for (const d of dev) sum += d;
    scale = (MEAN_AD_TO_SD * sum) / dev.length;
  }
  scale = Math.max(scale, options.scale_floor_rel * Math.abs(med), options.scale_floor_abs);
  return { med, scale };
}

/**
 * Cut points at the quantiles i/bins of the loads; equal cut points collapse, and a bin with
 * fewer than `minWindows` loads is merged into the next (the last into the previous one).
 */
export function loadEdges(loads: readonly number[], bins: number, minWindows: number): number[] {
  const sorted = [...loads].sort((a, b) => a - b);
  const candidates: number[] = [];
  for (let i = 1; i < bins; i++) {
    const q = sorted[Math.floor((i * sorted.length) / bins)]!;
    // A cut strictly above the minimum, so no bin is empty by construction.
    if (q > sorted[0]! && (candidates.length === 0 || q > candidates.at(-1)!)) candidates.push(q);
  }
  const counts = (edges: readonly number[]) => {
    const c = new Array<number>(edges.length + 1).fill(0);
    for (const x of sorted) c[binOf(edges, x)]!++;
    return c;
  };
  let edges = candidates;
  for (;;) {
    const c = counts(edges);
    const small = c.findIndex((n) => n < minWindows);
    if (small < 0 || edges.length === 0) return edges;
    // Drop the edge between the small bin and a neighbour: the next one, or for the last bin the previous one.
    edges = edges.filter((_, i) => i !== (small < edges.length ? small : small - 1));
  }
}

/** The bin of a load: the first edge it is below, else the last bin. */
export function binOf(edges: readonly number[], load: number): number {
  let i = 0;
  while (i < edges.length && load >= edges[i]!) i++;
  return i;
}

const signedLog1p = (x: number) => (x < 0 ? -Math.log1p(-x) : Math.log1p(x));
const identity = (x: number) => x;

function transformOf(kind: RobustZOptions['transform']): (x: number) => number {
  return kind === 'signed_log1p' ? signedLog1p : identity;
}

function maxOf(z: Float64Array): number {
  let m = 0;
  for (const v of z) if (v > m) m = v;
  return m;
}

function topKMean(z: Float64Array, k: number): number {
  const sorted = Float64Array.from(z).sort().reverse();
  const n = Math.min(k, sorted.length);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sorted[i]!;
  return n === 0 ? 0 : sum / n;
}
