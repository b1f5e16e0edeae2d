/**
 * Reading training and evaluation data from the store: for each run, its features (Arrow, one
 * level, one width) and its labels (Arrow, the same grid in the same row order), turned into a
 * FeatureMatrix of typed arrays and label columns. The run's last window as of the refresh
 * (`partial`: it covers less than window_ms of the run) is dropped from both, as is any window
 * without ground truth (`labelled` = 0: no record of any node fell in it): neither is a window a
 * detector should be fitted or judged on.
 */
import type { Table } from 'apache-arrow';
import { LatticeError, invariant } from '../core/errors.ts';
import type { Store } from '../store/client.ts';
import { readFeaturesArrow, readLabelsArrow } from '../store/arrow.ts';
import { FEATURE_TABLES, featureNames, type FeatureLevel } from '../store/feature-registry.ts';
import { queryRows } from '../store/transitions.ts';
import { contextKey, createMatrix, type FeatureMatrix } from '../models/matrix.ts';

export interface RunRef {
  readonly runId: string;
  readonly protocol: string;
  readonly nodes: number;
}

/** Per-row ground truth and position (run, node), aligned with the matrix rows; window starts are the matrix's. */
export interface LabelColumns {
  /** Index into `runs`. */
  readonly run: Uint32Array;
  /** Node of the row (node level), else -1. */
  readonly node: Int32Array;
  readonly faultActive: Uint8Array;
  readonly recovering: Uint8Array;
  /** Node level: the row's node is among the faulty ones; cluster level: equals faultActive. */
  readonly nodeFaulty: Uint8Array;
  /** Sorted fault kinds active in the row's window (shared arrays; empty when none). */
  readonly activeFaults: readonly (readonly string[])[];
}

export interface Dataset {
  readonly runs: readonly RunRef[];
  readonly matrix: FeatureMatrix;
  readonly labels: LabelColumns;
}

export class MissingRunsError extends LatticeError {
  readonly missing: readonly string[];

  constructor(missing: readonly string[], hint: string) {
    super('NOT_FOUND', `${missing.length} run${missing.length === 1 ? '' : 's'} not in the store (${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', …' : ''}): ${hint}`);
    this.missing = missing;
  }
}

/** The runs of `runIds` that have features at this width in the store. */
export async function runsWithFeatures(store: Store, runIds: readonly string[], level: FeatureLevel, windowMs: number): Promise<Set<string>> {
  const rows = await queryRows<{ run_id: string }>(store, `SELECT DISTINCT run_id FROM ${store.table(FEATURE_TABLES[level])} WHERE window_ms = {window_ms:UInt32} AND has({runs:Array(String)}, run_id)`, {
    window_ms: windowMs,
    runs: [...runIds],
  });
  return new Set(rows.map((r) => r.run_id));
}

/** Throws MissingRunsError (with `hint`, e.g. the command that generates them) unless every run is in the store. */
export async function assertRunsStored(store: Store, runs: readonly RunRef[], level: FeatureLevel, windowMs: number, hint: string): Promise<void> {
  const present = await runsWithFeatures(store, runs.map((r) => r.runId), level, windowMs);
  const missing = runs.filter((r) => !present.has(r.runId)).map((r) => r.runId);
  if (missing.length > 0) throw new MissingRunsError(missing, hint);
}

export interface ReadOptions {
  readonly level: FeatureLevel;
  readonly windowMs: number;
  /** Called after each run is read. */
  readonly onRun?: (done: number, total: number, rows: number) => void;
}

const num = (v: unknown): number => (typeof v === 'bigint' ? Number(v) : typeof v === 'number' ? v : v instanceof Date ? v.getTime() : Number(v));

/** Reads the runs' features and labels into one dataset (rows: run by run, in time (and node) order). */
export async function readDataset(store: Store, runs: readonly RunRef[], options: ReadOptions): Promise<Dataset> {
  const names = featureNames(options.level);
  const contexts = [...new Set(runs.map((r) => contextKey(r.protocol, r.nodes)))];
  const parts: { values: Float64Array; ctx: number; run: number; start: Float64Array; node: Int32Array; fault: Uint8Array; rec: Uint8Array; nodeFaulty: Uint8Array; kinds: (readonly string[])[] }[] = [];
  let total = 0;
  for (const [r, run] of runs.entries()) {
    const features = await readFeaturesArrow(store, { runId: run.runId, level: options.level, windowMs: options.windowMs });
    const labels = await readLabelsArrow(store, { runId: run.runId, level: options.level, windowMs: options.windowMs });
    const part = convertRun(features, labels, names, options.level, run.runId);
    parts.push({ ...part, ctx: contexts.indexOf(contextKey(run.protocol, run.nodes)), run: r });
    total += part.start.length;
    options.onRun?.(r + 1, runs.length, total);
  }
  const cols = names.length;
  const values = new Float64Array(total * cols);
  const contextIds = new Uint16Array(total);
  const windowStartMs = new Float64Array(total);
  const labels = {
    run: new Uint32Array(total),
    node: new Int32Array(total),
    faultActive: new Uint8Array(total),
    recovering: new Uint8Array(total),
    nodeFaulty: new Uint8Array(total),
    activeFaults: [] as (readonly string[])[],
  };
  let at = 0;
  for (const p of parts) {
    const n = p.start.length;
    values.set(p.values, at * cols);
    contextIds.fill(p.ctx, at, at + n);
    labels.run.fill(p.run, at, at + n);
    windowStartMs.set(p.start, at);
    labels.node.set(p.node, at);
    labels.faultActive.set(p.fault, at);
    labels.recovering.set(p.rec, at);
    labels.nodeFaulty.set(p.nodeFaulty, at);
    labels.activeFaults.push(...p.kinds);
    at += n;
  }
  // A series is a run at cluster level and one node of a run at node level.
  const seriesIds = new Uint32Array(total);
  const seriesKey = new Map<string, number>();
  for (let i = 0; i < total; i++) {
    const key = `${labels.run[i]}/${labels.node[i]}`;
    let id = seriesKey.get(key);
    if (id === undefined) seriesKey.set(key, (id = seriesKey.size));
    seriesIds[i] = id;
  }
  const matrix = createMatrix({ level: options.level, windowMs: options.windowMs, featureNames: names, values, contextIds, contexts, seriesIds, windowStartMs });
  return { runs, matrix, labels };
}

const NO_FAULTS: readonly string[] = [];

function convertRun(features: Table, labels: Table, names: readonly string[], level: FeatureLevel, runId: string) {
  invariant(features.numRows === labels.numRows, `run ${runId}: ${features.numRows} feature rows but ${labels.numRows} label rows`);
  const n = features.numRows;
  const fStart = features.getChild('window_start');
  const lStart = labels.getChild('window_start');
  const partial = features.getChild('partial');
  const labelled = labels.getChild('labelled');
  invariant(fStart !== null && lStart !== null && partial !== null && labelled !== null, `run ${runId}: window_start, partial or labelled missing`);
  const fNode = level === 'node' ? features.getChild('node') : null;
  const lNode = level === 'node' ? labels.getChild('node') : null;
  const keep: number[] = [];
  for (let i = 0; i < n; i++) {
    // The same grid in the same order: a broken join would silently pair wrong labels.
    invariant(num(fStart.get(i)) === num(lStart.get(i)) && (fNode === null || num(fNode.get(i)) === num(lNode?.get(i))), `run ${runId}: feature and label rows differ at row ${i}`);
    if (num(partial.get(i)) === 0 && num(labelled.get(i)) === 1) keep.push(i);
  }
  const cols = names.length;
  const values = new Float64Array(keep.length * cols);
  names.forEach((name, j) => {
    const column = features.getChild(name);
    invariant(column !== null, `run ${runId}: feature ${name} missing from the store's table`);
    const all = column.toArray() as ArrayLike<number | bigint>;
    keep.forEach((row, k) => (values[k * cols + j] = num(all[row])));
  });
  const fault = labels.getChild('fault_active');
  const rec = labels.getChild('recovering');
  const kindsCol = labels.getChild('active_faults');
  const nodeFaultyCol = level === 'node' ? labels.getChild('node_faulty') : null;
  invariant(fault !== null && rec !== null && kindsCol !== null, `run ${runId}: label columns missing`);
  const cache = new Map<string, readonly string[]>();
  const kinds = keep.map((row) => {
    const list = kindsCol.get(row) as { toArray(): unknown[] } | null;
    const arr = list === null ? [] : Array.from(list.toArray(), String);
    if (arr.length === 0) return NO_FAULTS;
    const key = arr.join(',');
    let shared = cache.get(key);
    if (shared === undefined) cache.set(key, (shared = arr));
    return shared;
  });
  return {
    values,
    start: Float64Array.from(keep, (row) => num(fStart.get(row))),
    node: Int32Array.from(keep, (row) => (fNode === null ? -1 : num(fNode.get(row)))),
    fault: Uint8Array.from(keep, (row) => num(fault.get(row))),
    rec: Uint8Array.from(keep, (row) => num(rec.get(row))),
    nodeFaulty: Uint8Array.from(keep, (row) => (nodeFaultyCol === null ? num(fault.get(row)) : num(nodeFaultyCol.get(row)))),
    kinds,
  };
}

/** Rows that are normal: ground truth known, no fault active, not recovering. */
export function normalMask(labels: LabelColumns): Uint8Array {
  const mask = new Uint8Array(labels.faultActive.length);
  for (let i = 0; i < mask.length; i++) mask[i] = labels.faultActive[i] === 0 && labels.recovering[i] === 0 ? 1 : 0;
  return mask;
}
