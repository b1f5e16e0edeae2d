/**
 * The features the models read, at any window width: per node (`features_node`) and per cluster
 * (`features_cluster`), keyed by (run_id, window_ms, window_start[, node]) so several widths
 * coexist (migration 5). Every column is defined once, in store/feature-registry.ts; the SQL
 * here is derived from it. Labels are not in these tables: store/labels.ts serves them.
 *
 * Every window of every node of a run has a row, from the run's first window to its last
 * (store/windows.ts): a node that reported nothing in a window gets zeros. The run's last window
 * is marked `partial`.
 *
 * Why explicit refreshes and not a materialized view: an MV sees every inserted block, including
 * a redelivered batch that the ReplacingMergeTree has not yet collapsed, so sums and quantiles
 * would count duplicates; and an MV cannot zero-fill a window nobody reported in.
 * `refreshFeatures` instead recomputes whole windows from `transitions FINAL` (exactly one row
 * per event id) and inserts them into ReplacingMergeTree tables keyed by window, where the
 * newest refresh of a window replaces older ones. Refreshing twice equals refreshing once;
 * refreshing after more data arrived corrects the window. Reads use FINAL.
 */
import { configSchema } from '../core/config.ts';
import { invariant } from '../core/errors.ts';
import type { Store } from './client.ts';
import { FEATURE_SOURCES, FEATURE_TABLES, FEATURES, keyColumns, featureNames, type FeatureLevel, type FeatureSourceName, type FeatureSpec } from './feature-registry.ts';
import { classifyStoreError, queryRows } from './transitions.ts';
import { windowGridQuery, windowOf, windowParams, windowStartMs } from './windows.ts';

export { FEATURE_PHASES, FEATURE_TABLES, type FeatureLevel } from './feature-registry.ts';

/** The configured default width (features.window_ms), for callers that do not say. */
export const DEFAULT_WINDOW_MS: number = configSchema.shape.features.parse({}).window_ms;

const atLevel = (level: FeatureLevel): FeatureSpec[] => FEATURES.filter((f) => f.levels.includes(level));

/** One source's aggregates per (run, window[, node]), each feature as column `f_<name>`. */
function sourceAggregates(store: Store, level: FeatureLevel, source: FeatureSourceName, features: readonly FeatureSpec[], runCondition: string): string {
  const spec = FEATURE_SOURCES[source];
  const node = level === 'node' ? `, ${spec.node} AS node` : '';
  const conditions = [`${spec.timeUs} >= {since_ms:Int64} * 1000`, ...('where' in spec ? [spec.where] : []), ...(runCondition === '' ? [] : [runCondition])];
  const columns = features.map((f) => `${f.definition} AS f_${f.name}`).join(',\n      ');
  return `SELECT run_id, ${windowOf(spec.timeUs)} AS w${node},
      ${columns}
    FROM ${store.table(spec.table)}${spec.final ? ' FINAL' : ''}
    WHERE ${conditions.join(' AND ')}
    GROUP BY run_id, w${level === 'node' ? ', node' : ''}`;
}

/**
 * The SELECT that computes one level's feature rows, columns in table order (keys, features,
 * refreshed_at). Params: run_id (when `runCondition` uses it), window_ms, window_us, since_ms.
 */
export function featureQuery(store: Store, level: FeatureLevel, runCondition = ''): string {
  const features = atLevel(level);
  const sources = [...new Set(features.filter((f) => f.stage === 'aggregate').map((f) => f.source))];
  const joins = sources.map((source, i) => {
    const on = [`g.run_id = s${i}.run_id`, `g.w = s${i}.w`, ...(level === 'node' ? [`g.node = s${i}.node`] : [])].join(' AND ');
    return `LEFT JOIN (${sourceAggregates(store, level, source, features.filter((f) => f.stage === 'aggregate' && f.source === source), runCondition)}) AS s${i} ON ${on}`;
  });
  const keys: Record<string, string> = {
    run_id: 'g.run_id',
    window_ms: 'toUInt32({window_ms:Int64})',
    window_start: "fromUnixTimestamp64Milli(g.w, 'UTC')",
    node: 'g.node',
    protocol: 'g.protocol',
    partial: 'toUInt8(g.w = g.last_w)',
  };
  const select = [
    ...keyColumns(level).map((k) => {
      const expression = keys[k.name];
      invariant(expression !== undefined, `no expression for key column ${k.name}: add it to featureQuery`);
      return `${expression} AS ${k.name}`;
    }),
    // Aggregates come from the joined source (0 where the node had no rows: the LEFT JOIN's
    // default); row features are expressions over the aliases of the aggregates.
    ...features.map((f) => (f.stage === 'aggregate' ? `s${sources.indexOf(f.source)}.f_${f.name}` : f.definition) + ` AS ${f.name}`),
    'now64(3) AS refreshed_at',
  ];
  return `SELECT\n  ${select.join(',\n  ')}\nFROM (${windowGridQuery(store, { level, runCondition })}) AS g\n${joins.join('\n')}`;
}

/** The columns a feature reader returns at one level: the keys and the features (never labels, never refreshed_at). */
export function featureColumns(level: FeatureLevel): string[] {
  return [...keyColumns(level).map((k) => k.name), ...featureNames(level)];
}

export interface RefreshOptions {
  /** Only windows at or after this time (µs since epoch); for cheap periodic refreshes of a live run. */
  readonly sinceUs?: number;
  /** Window width; default features.window_ms's default (100). */
  readonly windowMs?: number;
}

/**
 * Recomputes the features of one run (or all runs) from the deduplicated transitions and
 * replaces the stored windows. Idempotent.
 *
 * With `sinceUs`, whole windows from its window on are recomputed, and also every window from the
 * run's last stored one on: that one was the run's partial last window when it was computed, and
 * the windows after it may be missing their zero rows.
 */
export async function refreshFeatures(store: Store, runId?: string, options: RefreshOptions = {}): Promise<void> {
  const windowMs = options.windowMs ?? DEFAULT_WINDOW_MS;
  const params: Record<string, unknown> = runId === undefined ? {} : { run_id: runId };
  const runCondition = runId === undefined ? '' : 'run_id = {run_id:String}';
  const what = `refresh of features at ${windowMs} ms${runId === undefined ? '' : ` for run ${runId}`}`;
  for (const level of ['node', 'cluster'] as const) {
    let sinceMs = 0;
    // Without a run, a since would apply to every run alike, whatever each has stored: recompute all.
    if (options.sinceUs !== undefined && runId !== undefined) {
      const stored = await lastStoredWindowMs(store, level, runId, windowMs);
      sinceMs = stored === undefined ? 0 : Math.min(windowStartMs(options.sinceUs, windowMs), stored);
    }
    const columns = [...featureColumns(level), 'refreshed_at'];
    const query = `INSERT INTO ${store.table(FEATURE_TABLES[level])} (${columns.join(', ')})\n${featureQuery(store, level, runCondition)}`;
    try {
      await store.client.command({ query, query_params: { ...params, ...windowParams(windowMs, sinceMs) } });
    } catch (cause) {
      throw classifyStoreError(cause, `${what} (${level} level)`);
    }
  }
}

async function lastStoredWindowMs(store: Store, level: FeatureLevel, runId: string, windowMs: number): Promise<number | undefined> {
  const rows = await queryRows<{ n: string; last: string }>(
    store,
    `SELECT count() AS n, toUnixTimestamp64Milli(max(window_start)) AS last FROM ${store.table(FEATURE_TABLES[level])} WHERE run_id = {run_id:String} AND window_ms = {window_ms:UInt32}`,
    { run_id: runId, window_ms: windowMs },
  );
  const row = rows[0];
  return row === undefined || Number(row.n) === 0 ? undefined : Number(row.last);
}

export interface FeatureFilter {
  readonly runId?: string;
  readonly level: FeatureLevel;
  /** Default: features.window_ms's default (100). */
  readonly windowMs?: number;
  /** Only windows starting after this (ms since epoch): a live reader's cursor. */
  readonly afterWindowStartMs?: number;
  /** Only windows starting at or before this (ms since epoch), e.g. the watermark's final_through_window_start_ms. */
  readonly throughWindowStartMs?: number;
}

/** The SELECT over a feature table, newest refresh per window, ordered by run, time (and node). */
export function featureReadQuery(store: Store, filter: FeatureFilter): { query: string; params: Record<string, unknown> } {
  const conditions = ['window_ms = {window_ms:UInt32}'];
  const params: Record<string, unknown> = { window_ms: filter.windowMs ?? DEFAULT_WINDOW_MS };
  if (filter.runId !== undefined) {
    conditions.push('run_id = {run_id:String}');
    params.run_id = filter.runId;
  }
  if (filter.afterWindowStartMs !== undefined) {
    conditions.push('window_start > fromUnixTimestamp64Milli({after_ms:Int64}, \'UTC\')');
    params.after_ms = filter.afterWindowStartMs;
  }
  if (filter.throughWindowStartMs !== undefined) {
    conditions.push('window_start <= fromUnixTimestamp64Milli({through_ms:Int64}, \'UTC\')');
    params.through_ms = filter.throughWindowStartMs;
  }
  const order = filter.level === 'node' ? 'run_id, window_start, node' : 'run_id, window_start';
  return {
    query: `SELECT ${featureColumns(filter.level).join(', ')} FROM ${store.table(FEATURE_TABLES[filter.level])} FINAL WHERE ${conditions.join(' AND ')} ORDER BY ${order}`,
    params,
  };
}

/** Feature rows as JSON objects (UInt64 columns arrive as strings); Arrow is in arrow.ts. */
export async function readFeatureRows<T = Record<string, unknown>>(store: Store, filter: FeatureFilter): Promise<T[]> {
  const { query, params } = featureReadQuery(store, filter);
  return queryRows<T>(store, query, params);
}
