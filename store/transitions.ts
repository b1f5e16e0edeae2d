/**
 * Writes and reads of the `transitions` table. Inserts are idempotent by construction: the
 * table's sorting key is the event id's parts, so a redelivered batch collapses on merge, and
 * every count here reads with FINAL so it never sees a duplicate.
 */
import { TRACE_FIELDS, type TraceRecord } from '../core/trace-schema.ts';
import type { Store } from './client.ts';
import { classifyStoreError } from './errors.ts';

export async function insertTransitions(store: Store, records: readonly TraceRecord[]): Promise<void> {
  if (records.length === 0) return;
  try {
    await store.client.insert({ table: store.table('transitions'), values: records as TraceRecord[], format: 'JSONEachRow' });
  } catch (cause) {
    throw classifyStoreError(cause, `insert of ${records.length} transitions`);
  }
}

export async function countTransitions(store: Store, runId?: string): Promise<number> {
  const where = runId === undefined ? '' : 'WHERE run_id = {run_id:String}';
  const rows = await queryRows<{ n: string }>(store, `SELECT count() AS n FROM ${store.table('transitions')} FINAL ${where}`, runId === undefined ? {} : { run_id: runId });
  return Number(rows[0]?.n ?? 0);
}

/** The stored event ids of a run, for exact set comparisons in tests and audits. */
export async function eventIds(store: Store, runId: string): Promise<string[]> {
  const rows = await queryRows<{ event_id: string }>(store, `SELECT event_id FROM ${store.table('transitions')} FINAL WHERE run_id = {run_id:String} ORDER BY node, node_seq`, { run_id: runId });
  return rows.map((r) => r.event_id);
}

export async function queryRows<T>(store: Store, query: string, params: Record<string, unknown> = {}): Promise<T[]> {
  try {
    const result = await store.client.query({ query, format: 'JSONEachRow', query_params: params });
    return await result.json<T>();
  } catch (cause) {
    throw classifyStoreError(cause, 'query');
  }
}

/** A run of one node's records: `first..last` node_seq, inclusive. */
export interface NodeSeqRange {
  readonly runId: string;
  readonly node: number;
  readonly first: number;
  readonly last: number;
}

/**
 * Every stored version of the records in the ranges, duplicates included (no FINAL: a conflict
 * that slipped in earlier must show up as two versions, not one). The ranges follow the table's
 * sorting key, so this reads only the parts' index marks that cover them.
 */
export async function storedVersions(store: Store, ranges: readonly NodeSeqRange[]): Promise<TraceRecord[]> {
  if (ranges.length === 0) return [];
  const params: Record<string, unknown> = {};
  const conditions = ranges.map((range, i) => {
    params[`r${i}`] = range.runId;
    params[`n${i}`] = range.node;
    params[`a${i}`] = range.first;
    params[`b${i}`] = range.last;
    return `(run_id = {r${i}:String} AND node = {n${i}:UInt16} AND node_seq BETWEEN {a${i}:UInt64} AND {b${i}:UInt64})`;
  });
  const columns = TRACE_FIELDS.join(', ');
  return queryRows<TraceRecord>(store, `SELECT ${columns} FROM ${store.table('transitions')} WHERE ${conditions.join(' OR ')} SETTINGS output_format_json_quote_64bit_integers = 0`, params);
}

/** Store failures are classified in one table by backend code (store/errors.ts); re-exported for the callers that import it from here. */
/** The highest stored node_seq of each node (nodes with nothing stored are absent). */
export async function storedMaxNodeSeq(store: Store, nodes: readonly { runId: string; node: number }[]): Promise<{ runId: string; node: number; max: number }[]> {
  if (nodes.length === 0) return [];
  const params: Record<string, unknown> = {};
  const conditions = nodes.map((n, i) => {
    params[`r${i}`] = n.runId;
    params[`n${i}`] = n.node;
    return `(run_id = {r${i}:String} AND node = {n${i}:UInt16})`;
  });
  const rows = await queryRows<{ run_id: string; node: number; max_seq: number }>(
    store,
    `SELECT run_id, node, max(node_seq) AS max_seq FROM ${store.table('transitions')} WHERE ${conditions.join(' OR ')} GROUP BY run_id, node SETTINGS output_format_json_quote_64bit_integers = 0`,
    params,
  );
  return rows.map((r) => ({ runId: r.run_id, node: Number(r.node), max: Number(r.max_seq) }));
}

export { classifyStoreError } from './errors.ts';
