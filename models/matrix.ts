/**
 * A feature matrix: the windows of one level (rows) × registry features (columns), row-major in
 * one Float64Array, with a context per row (protocol and cluster size: features summed over the
 * nodes scale with n, so a model keeps its statistics per context). Models read only this; the
 * store-facing reader that builds it lives in training/.
 */
import { ValidationError } from '../core/errors.ts';
import type { FeatureLevel } from '../store/feature-registry.ts';

export interface FeatureMatrix {
  readonly level: FeatureLevel;
  readonly windowMs: number;
  /** Column names, registry order (covariates included). */
  readonly featureNames: readonly string[];
  readonly rows: number;
  /** rows × featureNames.length, row-major. */
  readonly values: Float64Array;
  /** Per row: an index into `contexts`. */
  readonly contextIds: Uint16Array;
  /** Context keys, e.g. `pbft/n4` (see contextKey). */
  readonly contexts: readonly string[];
  /**
   * Per row: the series it belongs to (a run at cluster level, a run's node at node level) and
   * its window's start. Sequence models read a row's history from these: the rows of its series
   * whose windows end where the next one starts (a dropped window breaks the sequence).
   */
  readonly seriesIds: Uint32Array;
  readonly windowStartMs: Float64Array;
}

/** The context of a run: what a model keeps statistics apart for. */
export function contextKey(protocol: string, nodes: number): string {
  return `${protocol}/n${nodes}`;
}

export type MatrixInit = Omit<FeatureMatrix, 'rows' | 'seriesIds' | 'windowStartMs'> & Partial<Pick<FeatureMatrix, 'seriesIds' | 'windowStartMs'>>;

/**
 * Checks and builds a matrix. Without `seriesIds` / `windowStartMs` (synthetic matrices in
 * tests and benchmarks) the rows are one series, row i starting at i × windowMs.
 */
export function createMatrix(init: MatrixInit): FeatureMatrix {
  const cols = init.featureNames.length;
  const errors: { path: string; message: string }[] = [];
  if (cols === 0) errors.push({ path: 'featureNames', message: 'expected at least one feature' });
  if (cols > 0 && init.values.length % cols !== 0) errors.push({ path: 'values', message: `length ${init.values.length} is not a multiple of ${cols} features` });
  const rows = cols === 0 ? 0 : init.values.length / cols;
  if (init.contextIds.length !== rows) errors.push({ path: 'contextIds', message: `expected ${rows} entries (one per row), got ${init.contextIds.length}` });
  for (let i = 0; i < init.contextIds.length; i++) {
    if (init.contextIds[i]! >= init.contexts.length) {
      errors.push({ path: `contextIds[${i}]`, message: `context ${init.contextIds[i]} is not among the ${init.contexts.length} contexts` });
      break;
    }
  }
  for (let i = 0; i < init.values.length; i++) {
    if (!Number.isFinite(init.values[i]!)) {
      errors.push({ path: `values[${Math.floor(i / cols)}].${init.featureNames[i % cols]}`, message: `expected a finite number, got ${init.values[i]}` });
      break;
    }
  }
  const seriesIds = init.seriesIds ?? new Uint32Array(rows);
  const windowStartMs = init.windowStartMs ?? Float64Array.from({ length: rows }, (_, i) => i * init.windowMs);
  if (seriesIds.length !== rows) errors.push({ path: 'seriesIds', message: `expected ${rows} entries (one per row), got ${seriesIds.length}` });
  if (windowStartMs.length !== rows) errors.push({ path: 'windowStartMs', message: `expected ${rows} entries (one per row), got ${windowStartMs.length}` });
  if (errors.length > 0) throw new ValidationError('feature matrix', errors);
  return { ...init, rows, seriesIds, windowStartMs };
}

/** The rows whose mask entry is 1, as a new matrix (contexts kept). */
export function selectRows(matrix: FeatureMatrix, mask: Uint8Array): FeatureMatrix {
  const cols = matrix.featureNames.length;
  let n = 0;
  for (let i = 0; i < matrix.rows; i++) if (mask[i] === 1) n++;
  const values = new Float64Array(n * cols);
  const contextIds = new Uint16Array(n);
  const seriesIds = new Uint32Array(n);
  const windowStartMs = new Float64Array(n);
  let r = 0;
  for (let i = 0; i < matrix.rows; i++) {
    if (mask[i] !== 1) continue;
    values.set(matrix.values.subarray(i * cols, (i + 1) * cols), r * cols);
    contextIds[r] = matrix.contextIds[i]!;
    seriesIds[r] = matrix.seriesIds[i]!;
    windowStartMs[r] = matrix.windowStartMs[i]!;
    r++;
  }
  return { ...matrix, rows: n, values, contextIds, seriesIds, windowStartMs };
}

/** Column index of a feature, or a ValidationError naming it. */
export function columnOf(matrix: Pick<FeatureMatrix, 'featureNames'>, name: string): number {
  const index = matrix.featureNames.indexOf(name);
  if (index < 0) throw new ValidationError('feature matrix', [{ path: 'featureNames', message: `feature ${name} is missing` }]);
  return index;
}

/** The columns, level and width a fitted detector expects; throws naming what differs. */
export function assertMatrixFits(windows: FeatureMatrix, expected: { readonly featureNames: readonly string[]; readonly level: FeatureLevel; readonly windowMs: number }): void {
  const names = expected.featureNames;
  const same = windows.featureNames.length === names.length && windows.featureNames.every((name, i) => name === names[i]);
  if (!same) {
    const missing = names.filter((n) => !windows.featureNames.includes(n));
    const extra = windows.featureNames.filter((n) => !names.includes(n));
    throw new ValidationError('feature matrix', [{ path: 'featureNames', message: `expected the detector's ${names.length} features in order${missing.length > 0 ? `; missing ${missing.join(', ')}` : ''}${extra.length > 0 ? `; unexpected ${extra.join(', ')}` : ''}` }]);
  }
  if (windows.level !== expected.level || windows.windowMs !== expected.windowMs) {
    throw new ValidationError('feature matrix', [{ path: 'level', message: `detector is for ${expected.level} windows of ${expected.windowMs} ms, got ${windows.level} windows of ${windows.windowMs} ms` }]);
  }
}
