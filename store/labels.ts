/**
 * The label reader: ground truth per window (and per node), apart from the features. Models read
 * features (store/features.ts), which carry no labels; evaluation reads labels here, on the same
 * window grid (store/windows.ts), so row i of the labels is row i of the features when both are
 * read for the same run, width and level.
 *
 * Labels are computed when read, from `transitions FINAL`; nothing stores them. Every record
 * carries the faults active anywhere in the run at its moment, and the nodes they target, so a
 * window's labels are the union over all the records of the window, whichever node wrote them:
 * a crashed node, which writes nothing, is still labelled faulty from its peers' records.
 *
 * Adding a label is one entry in LABELS.
 */
import type { Store } from './client.ts';
import type { FeatureLevel } from './feature-registry.ts';
import { DEFAULT_WINDOW_MS } from './features.ts';
import { queryRows } from './transitions.ts';
import { windowGridQuery, windowOf, windowParams } from './windows.ts';

export interface LabelSpec {
  readonly name: string;
  readonly type: string;
  /** cluster: one value per window, also on every node row of it; node: per node and window. */
  readonly level: FeatureLevel;
  /**
   * cluster level: an aggregate over all the records of the window. node level: an expression
   * over the cluster-level labels (by name) and `node`.
   */
  readonly definition: string;
  readonly doc: string;
}

export const LABELS: readonly LabelSpec[] = [
  { name: 'labelled', type: 'UInt8', level: 'cluster', definition: 'toUInt8(count() > 0)', doc: 'ground truth is known: 1 when some record of any node falls in the window; 0 when none does (then every label is 0 or empty, meaning unknown, not fault-free)' },
  { name: 'active_faults', type: 'Array(String)', level: 'cluster', definition: 'arraySort(groupUniqArrayArray(faults))', doc: "sorted distinct fault kinds active in the window (union of the records' faults)" },
  { name: 'fault_active', type: 'UInt8', level: 'cluster', definition: 'toUInt8(max(length(faults) > 0))', doc: '1 when any record of the window reported an active fault' },
  { name: 'faulty_nodes', type: 'Array(UInt16)', level: 'cluster', definition: 'arraySort(groupUniqArrayArray(faulty_nodes))', doc: 'sorted distinct nodes targeted by the faults of the window' },
  { name: 'recovering', type: 'UInt8', level: 'cluster', definition: 'toUInt8(max(recovering))', doc: 'the cluster is back from a fault but not yet normal again (view settled, backlog drained): scored apart from both faulty and normal windows' },
  { name: 'node_faulty', type: 'UInt8', level: 'node', definition: 'toUInt8(has(faulty_nodes, node))', doc: "node rows only: 1 when the node is among the window's faulty_nodes" },
];

/** The label names a reader returns at a level, in order. */
export function labelNames(level: FeatureLevel): string[] {
  return LABELS.filter((l) => l.level === 'cluster' || level === 'node').map((l) => l.name);
}

export interface LabelFilter {
  readonly runId?: string;
  readonly level: FeatureLevel;
  /** Default: features.window_ms's default (100). */
  readonly windowMs?: number;
}

/** The SELECT of the labels: the key columns (run_id, window_ms, window_start[, node]) and every label, in the features' row order. */
export function labelQuery(store: Store, filter: LabelFilter): { query: string; params: Record<string, unknown> } {
  const windowMs = filter.windowMs ?? DEFAULT_WINDOW_MS;
  const runCondition = filter.runId === undefined ? '' : 'run_id = {run_id:String}';
  const cluster = LABELS.filter((l) => l.level === 'cluster');
  const aggregates = `SELECT run_id, ${windowOf('ts_us')} AS w, ${cluster.map((l) => `${l.definition} AS l_${l.name}`).join(', ')}
    FROM ${store.table('transitions')} FINAL ${runCondition === '' ? '' : `WHERE ${runCondition}`}
    GROUP BY run_id, w`;
  const keys = ['g.run_id AS run_id', 'toUInt32({window_ms:Int64}) AS window_ms', "fromUnixTimestamp64Milli(g.w, 'UTC') AS window_start", ...(filter.level === 'node' ? ['g.node AS node'] : [])];
  const labels = LABELS.filter((l) => l.level === 'cluster' || filter.level === 'node').map((l) => (l.level === 'cluster' ? `a.l_${l.name}` : l.definition) + ` AS ${l.name}`);
  const order = filter.level === 'node' ? 'run_id, window_start, node' : 'run_id, window_start';
  return {
    query: `SELECT ${[...keys, ...labels].join(', ')}
FROM (${windowGridQuery(store, { level: filter.level, runCondition })}) AS g
LEFT JOIN (${aggregates}) AS a ON g.run_id = a.run_id AND g.w = a.w
ORDER BY ${order}`,
    params: { ...(filter.runId === undefined ? {} : { run_id: filter.runId }), ...windowParams(windowMs) },
  };
}

/** Label rows as JSON objects; Arrow is in arrow.ts (readLabelsArrow). */
export async function readLabelRows<T = Record<string, unknown>>(store: Store, filter: LabelFilter): Promise<T[]> {
  const { query, params } = labelQuery(store, filter);
  return queryRows<T>(store, query, params);
}

/** The markdown table of docs/features.md listing every label (a test checks the doc holds exactly this). */
export function labelDocTable(): string {
  const cell = (s: string) => s.replaceAll('|', '\\|');
  const rows = LABELS.map((l) => `| \`${l.name}\` | ${l.type} | ${l.level} | \`${cell(l.definition)}\` | ${cell(l.doc)} |`);
  return ['| label | type | level | definition | meaning |', '|---|---|---|---|---|', ...rows].join('\n');
}
