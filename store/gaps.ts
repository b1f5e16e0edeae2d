/**
 * The `trace_gaps` table: records a producer declared lost, with the reason (core/gap-record.ts).
 * Keyed like the records they stand for, so a redelivered gap collapses; reads use FINAL.
 */
import type { GapRecord } from '../core/gap-record.ts';
import type { Store } from './client.ts';
import { classifyStoreError, queryRows } from './transitions.ts';

export async function insertGaps(store: Store, gaps: readonly GapRecord[]): Promise<void> {
  if (gaps.length === 0) return;
  const values = gaps.map(({ record_type: _type, schema_version: _version, ...row }) => row);
  try {
    await store.client.insert({ table: store.table('trace_gaps'), values, format: 'JSONEachRow' });
  } catch (cause) {
    throw classifyStoreError(cause, `insert of ${gaps.length} trace gaps`);
  }
}

export interface StoredGap {
  readonly run_id: string;
  readonly node: number;
  readonly node_seq_first: number;
  readonly node_seq_last: number;
  readonly records: number;
  readonly reason: string;
}

export async function gapsOf(store: Store, runId: string): Promise<StoredGap[]> {
  const rows = await queryRows<StoredGap>(
    store,
    `SELECT run_id, node, node_seq_first, node_seq_last, records, reason FROM ${store.table('trace_gaps')} FINAL WHERE run_id = {run_id:String} ORDER BY node, node_seq_first SETTINGS output_format_json_quote_64bit_integers = 0`,
    { run_id: runId },
  );
  return rows;
}
