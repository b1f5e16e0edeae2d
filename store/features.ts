/**
 * The features the models read: per-second aggregates of the transitions, per node
 * (`features_node_1s`) and per cluster (`features_cluster_1s`). Every feature is documented in
 * docs/features.md.
 *
 * Why explicit refreshes and not a materialized view: an MV sees every inserted block, including
 * a redelivered batch that the ReplacingMergeTree has not yet collapsed, so sums and quantiles
 * would count duplicates. `refreshFeatures` instead recomputes whole windows from
 * `transitions FINAL` (exactly one row per event id) and inserts them into ReplacingMergeTree
 * tables keyed by window, where the newest refresh of a window replaces older ones. Refreshing
 * twice equals refreshing once; refreshing after more data arrived corrects the window. Reads
 * use FINAL.
 */
import { PHASES } from '../core/trace-schema.ts';
import type { Store } from './client.ts';
import { classifyStoreError, queryRows } from './transitions.ts';

export type FeatureLevel = 'node' | 'cluster';

/** Every phase of every protocol, each counted in its own `phase_<name>` column. */
export const FEATURE_PHASES: readonly string[] = [...new Set<string>([...PHASES.pbft, ...PHASES.epaxos])];

export const FEATURE_TABLES: Readonly<Record<FeatureLevel, string>> = { node: 'features_node_1s', cluster: 'features_cluster_1s' };

/** The sample of "commit latency": when an operation is first known committed at a node. */
const COMMIT_SAMPLE = `latency_us IS NOT NULL AND ((protocol = 'epaxos' AND phase = 'commit') OR (protocol = 'pbft' AND phase = 'execute'))`;
/** EPaxos dependency counts are read off each instance's commit (its final dependency set). */
const DEPS_SAMPLE = `protocol = 'epaxos' AND phase = 'commit'`;

/** Column → expression over `transitions` rows of one group; shared by both levels. */
const COMMON: ReadonlyArray<readonly [string, string]> = [
  ['protocol', 'any(protocol)'],
  ['transitions', 'count()'],
  ['msgs_sent', 'sum(msgs_sent)'],
  ['msgs_received', 'sum(msgs_received)'],
  ['retransmissions', 'sum(retransmissions)'],
  ...FEATURE_PHASES.map((phase) => [`phase_${phase}`, `countIf(phase = '${phase}')`] as const),
  ['view_changes', `countIf(protocol = 'pbft' AND phase = 'view_change')`],
  ['new_views', `countIf(protocol = 'pbft' AND phase = 'new_view')`],
  ['recoveries', `countIf(protocol = 'epaxos' AND phase = 'prepare')`],
  ['commits_measured', `countIf(${COMMIT_SAMPLE})`],
  ['commit_latency_p50_us', `if(countIf(${COMMIT_SAMPLE}) = 0, 0, quantileExactIf(0.5)(toFloat64(assumeNotNull(latency_us)), ${COMMIT_SAMPLE}))`],
  ['commit_latency_p90_us', `if(countIf(${COMMIT_SAMPLE}) = 0, 0, quantileExactIf(0.9)(toFloat64(assumeNotNull(latency_us)), ${COMMIT_SAMPLE}))`],
  ['commit_latency_p99_us', `if(countIf(${COMMIT_SAMPLE}) = 0, 0, quantileExactIf(0.99)(toFloat64(assumeNotNull(latency_us)), ${COMMIT_SAMPLE}))`],
  ['executed_ops', `sumIf(batch_size, phase = 'execute')`],
  ['deps_mean', `if(countIf(${DEPS_SAMPLE}) = 0, 0, avgIf(deps_count, ${DEPS_SAMPLE}))`],
  ['deps_max', `maxIf(deps_count, ${DEPS_SAMPLE})`],
  ['hash_mismatches', 'countIf(state_hash != shadow_hash)'],
  ['clock_offset_mean_us', 'avg(node_clock_us - ts_us)'],
  ['clock_offset_max_abs_us', 'max(abs(node_clock_us - ts_us))'],
  ['active_faults', 'arraySort(groupUniqArrayArray(faults))'],
  ['fault_active', 'max(length(faults) > 0)'],
];

const WINDOW = `toDateTime(intDiv(ts_us, 1000000), 'UTC')`;

const LEVEL_COLUMNS: Readonly<Record<FeatureLevel, ReadonlyArray<readonly [string, string]>>> = {
  node: [['run_id', 'run_id'], ['window_start', WINDOW], ['node', 'node'], ...COMMON, ['node_faulty', 'max(has(faulty_nodes, node))']],
  cluster: [['run_id', 'run_id'], ['window_start', WINDOW], ['nodes_reporting', 'uniqExact(node)'], ...COMMON, ['faulty_nodes', 'arraySort(groupUniqArrayArray(faulty_nodes))']],
};

const GROUP_BY: Readonly<Record<FeatureLevel, string>> = { node: `run_id, ${WINDOW}, node`, cluster: `run_id, ${WINDOW}` };

/** The SELECT that computes one level's features (exposed for docs and ad-hoc use). */
export function featureQuery(store: Store, level: FeatureLevel, where: string): string {
  // Expressions go through aliases of a subquery-free SELECT; the output names are set by the
  // INSERT's column list, so no alias shadows a `transitions` column inside an aggregate.
  const select = LEVEL_COLUMNS[level].map(([, expr]) => expr).join(',\n  ');
  return `SELECT\n  ${select}\nFROM ${store.table('transitions')} FINAL\n${where}\nGROUP BY ${GROUP_BY[level]}`;
}

export function featureColumns(level: FeatureLevel): string[] {
  return LEVEL_COLUMNS[level].map(([name]) => name);
}

export interface RefreshOptions {
  /** Only windows at or after this time (µs since epoch); for cheap periodic refreshes of a live run. */
  readonly sinceUs?: number;
}

/**
 * Recomputes the features of one run (or all runs) from the deduplicated transitions and
 * replaces the stored windows. Idempotent.
 */
export async function refreshFeatures(store: Store, runId?: string, options: RefreshOptions = {}): Promise<void> {
  const conditions: string[] = [];
  const params: Record<string, unknown> = {};
  if (runId !== undefined) {
    conditions.push('run_id = {run_id:String}');
    params.run_id = runId;
  }
  if (options.sinceUs !== undefined) {
    // Whole windows only: a partial window would replace a complete one.
    conditions.push('ts_us >= {since_us:Int64}');
    params.since_us = Math.floor(options.sinceUs / 1_000_000) * 1_000_000;
  }
  const where = conditions.length === 0 ? '' : `WHERE ${conditions.join(' AND ')}`;
  for (const level of ['node', 'cluster'] as const) {
    const columns = [...featureColumns(level), 'refreshed_at'];
    const query = `INSERT INTO ${store.table(FEATURE_TABLES[level])} (${columns.join(', ')})\nSELECT *, now64(3) FROM (${featureQuery(store, level, where)})`;
    try {
      await store.client.command({ query, query_params: params });
    } catch (cause) {
      throw classifyStoreError(cause, `refresh of ${level} features${runId === undefined ? '' : ` for run ${runId}`}`);
    }
  }
}

export interface FeatureFilter {
  readonly runId?: string;
  readonly level: FeatureLevel;
}

/** The SELECT over a feature table, newest refresh per window, ordered by time. */
export function featureReadQuery(store: Store, filter: FeatureFilter): { query: string; params: Record<string, unknown> } {
  const where = filter.runId === undefined ? '' : 'WHERE run_id = {run_id:String}';
  const order = filter.level === 'node' ? 'run_id, window_start, node' : 'run_id, window_start';
  return {
    query: `SELECT * EXCEPT (refreshed_at) FROM ${store.table(FEATURE_TABLES[filter.level])} FINAL ${where} ORDER BY ${order}`,
    params: filter.runId === undefined ? {} : { run_id: filter.runId },
  };
}

/** Feature rows as JSON objects (UInt64 columns arrive as strings); Arrow is in arrow.ts. */
export async function readFeatureRows<T = Record<string, unknown>>(store: Store, filter: FeatureFilter): Promise<T[]> {
  const { query, params } = featureReadQuery(store, filter);
  return queryRows<T>(store, query, params);
}
