/**
 * The window grid of a run: one row for every window from the run's first to its last, and at
 * node level for every node of the run in each. Features and labels are joined onto it, so a
 * window where a node reported nothing still has a row (zero-filled): a crashed or cut-off node
 * is evidence, not a gap.
 *
 * The node set of a run is every node that ever reported, and every node named as `leader` in a
 * record (the PBFT primary of a view, the EPaxos owner of an instance) — so a primary that
 * crashed before its first transition is still known from its peers' records. A node that never
 * reported and never led is not known from the trace; a membership source (the lead's
 * `metrics_snapshots`) would add it here.
 *
 * Windows are in milliseconds since the epoch (Int64): `w = intDiv(ts_us, window_us) * window_ms`.
 */
import { invariant } from '../core/errors.ts';
import type { Store } from './client.ts';
import type { FeatureLevel } from './feature-registry.ts';

export interface GridQuery {
  readonly level: FeatureLevel;
  /** A condition on `transitions` rows selecting the runs (e.g. `run_id = {run_id:String}`), or '' for all. */
  readonly runCondition: string;
}

/** The window of an event-time expression in µs, as Int64 ms since the epoch (params window_us, window_ms). */
export function windowOf(timeUs: string): string {
  return `intDiv(${timeUs}, {window_us:Int64}) * {window_ms:Int64}`;
}

/**
 * A SELECT with columns `run_id`, `protocol`, `first_w`, `last_w`, `w` and, at node level,
 * `node`: every window from max(first window, {since_ms}) to the last, for every run the
 * condition selects. Params: window_us, window_ms, since_ms (0 for all windows).
 */
export function windowGridQuery(store: Store, grid: GridQuery): string {
  const where = grid.runCondition === '' ? '' : `WHERE ${grid.runCondition}`;
  // Bounds need no FINAL: a duplicate repeats a record's time, node and leader exactly.
  const bounds = `SELECT run_id, any(protocol) AS protocol,
      ${windowOf('min(ts_us)')} AS first_w,
      ${windowOf('max(ts_us)')} AS last_w,
      arraySort(arrayDistinct(arrayConcat(groupUniqArray(node), groupUniqArray(leader)))) AS nodes
    FROM ${store.table('transitions')} ${where} GROUP BY run_id`;
  const start = `greatest(first_w, {since_ms:Int64})`;
  const windows = `arrayJoin(arrayMap(i -> ${start} + toInt64(i) * {window_ms:Int64}, range(toUInt64(intDiv(last_w - ${start}, {window_ms:Int64}) + 1)))) AS w`;
  const node = grid.level === 'node' ? ', arrayJoin(nodes) AS node' : '';
  return `SELECT run_id, protocol, first_w, last_w, ${windows}${node} FROM (${bounds}) WHERE ${start} <= last_w`;
}

/** The query parameters of the grid and the window expressions. */
export function windowParams(windowMs: number, sinceMs = 0): Record<string, unknown> {
  invariant(Number.isInteger(windowMs) && windowMs > 0, `window_ms must be a positive integer, got ${windowMs}`);
  invariant(Number.isInteger(sinceMs) && sinceMs >= 0 && sinceMs % windowMs === 0, `since_ms must be a whole window (a multiple of ${windowMs}), got ${sinceMs}`);
  return { window_ms: windowMs, window_us: windowMs * 1_000, since_ms: sinceMs };
}

/** Floors a time in µs to the start of its window, in ms. */
export function windowStartMs(timeUs: number, windowMs: number): number {
  return Math.floor(timeUs / (windowMs * 1_000)) * windowMs;
}
