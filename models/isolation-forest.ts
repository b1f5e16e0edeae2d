/**
 * Isolation forest (Liu, Ting & Zhou, ICDM 2008) with scikit-learn's defaults: per context
 * (protocol and cluster size, as robust z keeps its statistics) `trees` = 100 trees, each grown on
 * ψ = min(subsample_max = 256, n) windows drawn without replacement, to a height limit of
 * ceil(log2 ψ). A node splits on a random feature (among those not constant in its sample) at a
 * threshold uniform in [min, max) of its sample; x ≤ threshold goes left. A window's path length
 * in a tree is the depth of the external node it reaches plus c(size) of that node (the expected
 * depth of the subtree that the height limit cut off); its score is s = 2^(−E[h(x)]/c(ψ)), in
 * (0, 1], ≈ 0.5 for an ordinary window and near 1 for an isolated one, comparable across contexts.
 *
 * - Values are first transformed (`transform`, default signed log1p, as in robust z). Splits are
 *   uniform in [min, max], so without it a heavy-tailed latency spends almost every split on its
 *   tail.
 * - Features: every column by default, covariates included: the forest models the joint
 *   distribution, so the offered load conditions the other features implicitly (robust z bins on
 *   it explicitly). `features` restricts the splitting features.
 * - Contributions: at each split on x's path, the expected remaining path length drops from c(n)
 *   (a node of n windows, not yet split) to 1 + c(m) (the child of m windows x goes to); the
 *   split's feature is credited max(0, c(n) − 1 − c(m)), the path it saved. Credits are summed
 *   over the trees and normalised to shares summing to 1 (all 0 when no split shortened x's path).
 *   An isolated point is cut off by the splits on the feature it deviates in, which save the most.
 * - Trees are flat typed arrays (feature, threshold, left, right, size), all trees of a context
 *   in one set with a root offset per tree, so scoring is a tight loop.
 * Randomness only from the `rng` passed to fit (core/rng.ts): the same seed gives the same forest.
 */
import { ValidationError, invariant, type FieldError } from '../core/errors.ts';
import type { Rng } from '../core/rng.ts';
import type { FeatureLevel } from '../store/feature-registry.ts';
import type { Detector, DetectorFactory, DetectorState, FitOptions, ScoreBatch } from './detector.ts';
import { assertMatrixFits, columnOf, type FeatureMatrix } from './matrix.ts';

export interface IsolationForestOptions {
  /** Trees per context. */
  readonly trees: number;
  /** ψ: the largest subsample a tree is grown on (windows, drawn without replacement). */
  readonly subsample_max: number;
  /** Fewest normal windows a context may be fitted on. */
  readonly context_windows_min: number;
  /** As robust z: `signed_log1p` (sign(x)·ln(1 + |x|), default) or `none`. */
  readonly transform: 'signed_log1p' | 'none';
  /** Features to split on; default every column. */
  readonly features?: readonly string[];
}

export const ISOLATION_FOREST_DEFAULTS: IsolationForestOptions = {
  trees: 100,
  subsample_max: 256,
  context_windows_min: 30,
  transform: 'signed_log1p',
};

export function validateIsolationForestOptions(input: Partial<IsolationForestOptions> = {}): IsolationForestOptions {
  const options = { ...ISOLATION_FOREST_DEFAULTS, ...input };
  const errors: FieldError[] = [];
  const intAtLeast = (name: 'trees' | 'subsample_max' | 'context_windows_min', min: number) => {
    const v = options[name];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) errors.push({ path: name, message: `expected an integer >= ${min}, got ${String(v)}` });
  };
  intAtLeast('trees', 1);
  intAtLeast('subsample_max', 2);
  intAtLeast('context_windows_min', 2);
  if (options.transform !== 'signed_log1p' && options.transform !== 'none') errors.push({ path: 'transform', message: `expected signed_log1p or none, got ${String(options.transform)}` });
  if (errors.length > 0) throw new ValidationError('isolation forest options', errors);
  return options;
}

const EULER_GAMMA = 0.5772156649;

/** H(i) ≈ ln(i) + γ: the harmonic number, as the paper approximates it. */
export function harmonic(i: number): number {
  return Math.log(i) + EULER_GAMMA;
}

/** c(n) = 2H(n−1) − 2(n−1)/n: the average path length of an unsuccessful BST search among n points; c(1) = 0, c(2) = 1. */
export function averagePathLength(n: number): number {
  if (n <= 1) return 0;
  if (n === 2) return 1;
  return 2 * harmonic(n - 1) - (2 * (n - 1)) / n;
}

/** s = 2^(−E[h(x)]/c(ψ)). */
export function anomalyScore(meanPathLength: number, subsample: number): number {
  return Math.pow(2, -meanPathLength / averagePathLength(subsample));
}

/** One context's forest: every tree's nodes in the same flat arrays; a leaf has feature −1. */
interface Forest {
  readonly key: string;
  readonly windows: number;
  /** ψ of this context (min(subsample_max, windows)). */
  readonly subsample: number;
  readonly roots: Int32Array;
  /** Index into the scored features, or −1 for an external node. */
  readonly feature: Int32Array;
  readonly threshold: Float64Array;
  readonly left: Int32Array;
  readonly right: Int32Array;
  /** Training windows that reached the node. */
  readonly size: Int32Array;
  /** Derived, not saved: c(size) per node (the external-node correction), so scoring calls no log. */
  readonly correction: Float64Array;
  /** Derived, not saved: the credit of reaching the node from its parent, max(0, c(parent) − 1 − c(node)). */
  readonly credit: Float64Array;
}

type SavedForest = Omit<Forest, 'correction' | 'credit'>;

/** Adds the per-node terms scoring needs, computed once from the sizes. */
function withDerived(forest: SavedForest): Forest {
  const nodes = forest.size.length;
  const correction = new Float64Array(nodes);
  const credit = new Float64Array(nodes);
  for (let k = 0; k < nodes; k++) correction[k] = averagePathLength(forest.size[k]!);
  for (let k = 0; k < nodes; k++) {
    if (forest.feature[k]! < 0) continue;
    for (const child of [forest.left[k]!, forest.right[k]!]) credit[child] = Math.max(0, correction[k]! - 1 - correction[child]!);
  }
  return { ...forest, correction, credit };
}

interface ForestJson {
  readonly key: string;
  readonly windows: number;
  readonly subsample: number;
  readonly roots: number[];
  readonly feature: number[];
  readonly threshold: number[];
  readonly left: number[];
  readonly right: number[];
  readonly size: number[];
}

export interface IsolationForestState extends DetectorState {
  readonly kind: 'isolation-forest';
  readonly state_version: 1;
  readonly level: FeatureLevel;
  readonly window_ms: number;
  readonly feature_names: readonly string[];
  readonly options: Omit<IsolationForestOptions, 'features'>;
  readonly scored_features: readonly string[];
  readonly contexts: readonly ForestJson[];
}

export class IsolationForestDetector implements Detector {
  readonly kind = 'isolation-forest';
  readonly options: IsolationForestOptions;
  private readonly scoredNames: readonly string[];
  private forests = new Map<string, Forest>();

  constructor(
    readonly level: FeatureLevel,
    readonly windowMs: number,
    readonly featureNames: readonly string[],
    options: Partial<IsolationForestOptions> = {},
  ) {
    this.options = validateIsolationForestOptions(options);
    const scored = this.options.features ?? featureNames;
    const unknown = scored.filter((name) => !featureNames.includes(name));
    if (unknown.length > 0) throw new ValidationError('isolation forest options', [{ path: 'features', message: `not among the detector's features: ${unknown.join(', ')}` }]);
    if (scored.length === 0) throw new ValidationError('isolation forest options', [{ path: 'features', message: 'expected at least one feature' }]);
    this.scoredNames = [...scored];
  }

  get contexts(): readonly string[] {
    return [...this.forests.keys()];
  }

  get fitted(): boolean {
    return this.forests.size > 0;
  }

  get scoredFeatures(): readonly string[] {
    return this.scoredNames;
  }

  fit(windows: FeatureMatrix, options: FitOptions = {}): void {
    const { rng } = options;
    if (rng === undefined) throw new ValidationError('isolation forest fit', [{ path: 'rng', message: 'expected a seeded rng (core/rng.ts): the forest is random, and a seed reproduces it' }]);
    assertMatrixFits(windows, this);
    const cols = windows.featureNames.length;
    const scoredCols = this.scoredNames.map((name) => columnOf(windows, name));
    const f = scoredCols.length;
    const tf = transformOf(this.options.transform);
    const forests = new Map<string, Forest>();
    windows.contexts.forEach((key, id) => {
      const rows: number[] = [];
      for (let i = 0; i < windows.rows; i++) if (windows.contextIds[i] === id) rows.push(i);
      if (rows.length === 0) return;
      if (rows.length < this.options.context_windows_min) {
        throw new ValidationError('isolation forest training windows', [{ path: `context ${key}`, message: `${rows.length} normal windows, expected at least ${this.options.context_windows_min} (context_windows_min)` }]);
      }
      // The context's windows, transformed, row-major over the scored features only.
      const data = new Float64Array(rows.length * f);
      rows.forEach((row, r) => {
        for (let j = 0; j < f; j++) data[r * f + j] = tf(windows.values[row * cols + scoredCols[j]!]!);
      });
      forests.set(key, growForest(key, data, rows.length, f, this.options, rng.fork(`context/${key}`)));
    });
    if (forests.size === 0) throw new ValidationError('isolation forest training windows', [{ path: 'rows', message: 'no windows to fit on' }]);
    this.forests = forests;
  }

  score(windows: FeatureMatrix): ScoreBatch {
    invariant(this.fitted, 'isolation forest: score() before fit() or load()');
    assertMatrixFits(windows, this);
    const cols = windows.featureNames.length;
    const scoredCols = Int32Array.from(this.scoredNames.map((name) => columnOf(windows, name)));
    const f = scoredCols.length;
    const byContext = windows.contexts.map((key) => this.forests.get(key));
    const scores = new Float64Array(windows.rows);
    const contributions = new Float64Array(windows.rows * cols);
    const x = new Float64Array(f);
    const credit = new Float64Array(f);
    const tf = transformOf(this.options.transform);
    for (let i = 0; i < windows.rows; i++) {
      const forest = byContext[windows.contextIds[i]!];
      if (forest === undefined) {
        throw new ValidationError('windows to score', [{ path: `row ${i}`, message: `context ${windows.contexts[windows.contextIds[i]!]} was not in training (fitted on ${this.contexts.join(', ')})` }]);
      }
      for (let j = 0; j < f; j++) x[j] = tf(windows.values[i * cols + scoredCols[j]!]!);
      credit.fill(0);
      const { roots, feature, threshold, left, right, correction, credit: saved } = forest;
      let total = 0;
      for (let t = 0; t < roots.length; t++) {
        let node = roots[t]!;
        let depth = 0;
        let q = feature[node]!;
        while (q >= 0) {
          node = x[q]! <= threshold[node]! ? left[node]! : right[node]!;
          credit[q] = credit[q]! + saved[node]!;
          depth++;
          q = feature[node]!;
        }
        total += depth + correction[node]!;
      }
      scores[i] = anomalyScore(total / roots.length, forest.subsample);
      let sum = 0;
      for (let j = 0; j < f; j++) sum += credit[j]!;
      if (sum > 0) for (let j = 0; j < f; j++) contributions[i * cols + scoredCols[j]!] = credit[j]! / sum;
    }
    return { rows: windows.rows, featureNames: windows.featureNames, scores, scored: new Uint8Array(windows.rows).fill(1), contributions };
  }

  save(): IsolationForestState {
    invariant(this.fitted, 'isolation forest: save() before fit()');
    const { features: _features, ...options } = this.options;
    return {
      kind: 'isolation-forest',
      state_version: 1,
      level: this.level,
      window_ms: this.windowMs,
      feature_names: [...this.featureNames],
      options,
      scored_features: [...this.scoredNames],
      contexts: [...this.forests.values()].map((c) => ({
        key: c.key,
        windows: c.windows,
        subsample: c.subsample,
        roots: Array.from(c.roots),
        feature: Array.from(c.feature),
        threshold: Array.from(c.threshold),
        left: Array.from(c.left),
        right: Array.from(c.right),
        size: Array.from(c.size),
      })),
    };
  }

  /** Rebuilds a fitted detector from save()'s state, checking that every tree is well formed. */
  static load(state: DetectorState): IsolationForestDetector {
    const s = state as IsolationForestState;
    if (s.kind !== 'isolation-forest' || s.state_version !== 1) throw new ValidationError('isolation forest state', [{ path: 'kind', message: `expected isolation-forest state version 1, got ${String(s.kind)} version ${String(s.state_version)}` }]);
    const detector = new IsolationForestDetector(s.level, s.window_ms, s.feature_names, { ...s.options, features: s.scored_features });
    const f = s.scored_features.length;
    for (const c of s.contexts) {
      const nodes = c.feature.length;
      invariant(
        c.threshold.length === nodes && c.left.length === nodes && c.right.length === nodes && c.size.length === nodes && c.roots.length >= 1,
        `isolation forest state: context ${c.key} has arrays of different lengths`,
      );
      for (let k = 0; k < nodes; k++) {
        const q = c.feature[k]!;
        const inner = q >= 0;
        invariant(
          q >= -1 && q < f && Number.isInteger(q) && Number.isFinite(c.threshold[k]!) && c.size[k]! >= 0 && (!inner || (c.left[k]! > k && c.left[k]! < nodes && c.right[k]! > k && c.right[k]! < nodes)),
          `isolation forest state: node ${k} of context ${c.key} is malformed`,
        );
      }
      invariant(c.roots.every((r) => r >= 0 && r < nodes), `isolation forest state: a root of context ${c.key} is out of range`);
      detector.forests.set(c.key, withDerived({
        key: c.key,
        windows: c.windows,
        subsample: c.subsample,
        roots: Int32Array.from(c.roots),
        feature: Int32Array.from(c.feature),
        threshold: Float64Array.from(c.threshold),
        left: Int32Array.from(c.left),
        right: Int32Array.from(c.right),
        size: Int32Array.from(c.size),
      }));
    }
    return detector;
  }

}

export const isolationForestFactory: DetectorFactory<Partial<IsolationForestOptions>> = {
  kind: 'isolation-forest',
  create: ({ level, windowMs, featureNames, options }) => new IsolationForestDetector(level, windowMs, featureNames, options),
  load: (state) => IsolationForestDetector.load(state),
};

/** Grows one context's trees on `data` (n rows × f features, transformed). */
function growForest(key: string, data: Float64Array, n: number, f: number, options: IsolationForestOptions, rng: Rng): Forest {
  const psi = Math.min(options.subsample_max, n);
  const heightLimit = Math.ceil(Math.log2(psi));
  // A binary tree of ψ leaves at most has 2ψ − 1 nodes.
  const capacity = options.trees * (2 * psi - 1);
  const feature = new Int32Array(capacity);
  const threshold = new Float64Array(capacity);
  const left = new Int32Array(capacity);
  const right = new Int32Array(capacity);
  const size = new Int32Array(capacity);
  const roots = new Int32Array(options.trees);
  const all = new Int32Array(n);
  const candidates = new Int32Array(f);
  let used = 0;

  // Grows the subtree of sample[from, to) at `depth`; returns its node index (children after their parent).
  const grow = (sample: Int32Array, from: number, to: number, depth: number): number => {
    const node = used++;
    invariant(node < capacity, `isolation forest: context ${key} outgrew its ${capacity} nodes`);
    const count = to - from;
    size[node] = count;
    feature[node] = -1;
    threshold[node] = 0;
    left[node] = -1;
    right[node] = -1;
    if (depth >= heightLimit || count <= 1) return node;
    // A random feature among those not constant here (a constant one cannot split the sample).
    let remaining = f;
    for (let j = 0; j < f; j++) candidates[j] = j;
    let q = -1;
    let lo = 0;
    let hi = 0;
    while (remaining > 0) {
      const pick = rng.int(remaining);
      const j = candidates[pick]!;
      candidates[pick] = candidates[remaining - 1]!;
      remaining--;
      lo = Infinity;
      hi = -Infinity;
      for (let k = from; k < to; k++) {
        const v = data[sample[k]! * f + j]!;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      if (hi > lo) {
        q = j;
        break;
      }
    }
    if (q < 0) return node; // every feature constant: the windows are identical, an external node
    // In [lo, hi): x ≤ t keeps at least the minimum on the left, and the maximum stays right.
    let t = lo + rng.next() * (hi - lo);
    if (!(t < hi)) t = lo;
    // Partition sample[from, to) in place: x ≤ t first.
    let mid = from;
    for (let k = from; k < to; k++) {
      const r = sample[k]!;
      if (data[r * f + q]! <= t) {
        sample[k] = sample[mid]!;
        sample[mid] = r;
        mid++;
      }
    }
    invariant(mid > from && mid < to, `isolation forest: a split of context ${key} left a side empty`);
    feature[node] = q;
    threshold[node] = t;
    left[node] = grow(sample, from, mid, depth + 1);
    right[node] = grow(sample, mid, to, depth + 1);
    return node;
  };

  for (let tree = 0; tree < options.trees; tree++) {
    // ψ rows without replacement: a partial Fisher–Yates shuffle of all row indices.
    for (let i = 0; i < n; i++) all[i] = i;
    for (let i = 0; i < psi; i++) {
      const k = i + rng.int(n - i);
      const tmp = all[i]!;
      all[i] = all[k]!;
      all[k] = tmp;
    }
    roots[tree] = grow(all.slice(0, psi), 0, psi, 0);
  }
  return withDerived({
    key,
    windows: n,
    subsample: psi,
    roots,
    feature: feature.slice(0, used),
    threshold: threshold.slice(0, used),
    left: left.slice(0, used),
    right: right.slice(0, used),
    size: size.slice(0, used),
  });
}

const signedLog1p = (x: number) => (x < 0 ? -Math.log1p(-x) : Math.log1p(x));
const identity = (x: number) => x;

function transformOf(kind: IsolationForestOptions['transform']): (x: number) => number {
  return kind === 'signed_log1p' ? signedLog1p : identity;
}
