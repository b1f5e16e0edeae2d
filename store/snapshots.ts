/**
 * The `metrics_snapshots` table (core/metrics-snapshot.ts): one row per snapshot, keyed like its
 * id, so a redelivered snapshot collapses on merge; reads use FINAL. Valid snapshots arrive from
 * the collector with their original JSON bytes, which are exactly a row (the schema is strict).
 */
import { SNAPSHOT_FIELDS, snapshotJson, type MetricsSnapshot } from '../core/metrics-snapshot.ts';
import type { Store } from './client.ts';
import { insertNdjson } from './insert-ndjson.ts';
import { queryRows } from './transitions.ts';

/** Inserts snapshots; `rows` (their JSON lines, as received) spares re-encoding them. */
export async function insertSnapshots(store: Store, snapshots: readonly MetricsSnapshot[], rows?: readonly string[]): Promise<void> {
  if (snapshots.length === 0) return;
  const body = (rows ?? snapshots.map(snapshotJson)).join('\n') + '\n';
  await insertNdjson(store, store.table('metrics_snapshots'), body, `${snapshots.length} metrics snapshots`);
}

export async function countSnapshots(store: Store, runId: string): Promise<number> {
  const rows = await queryRows<{ n: string }>(store, `SELECT count() AS n FROM ${store.table('metrics_snapshots')} FINAL WHERE run_id = {run_id:String}`, { run_id: runId });
  return Number(rows[0]?.n ?? 0);
}

/** A run's snapshots as stored, every field of the table, ordered by source, node and sequence. */
export async function snapshotsOf(store: Store, runId: string): Promise<MetricsSnapshot[]> {
  return queryRows<MetricsSnapshot>(
    store,
    `SELECT ${SNAPSHOT_FIELDS.join(', ')} FROM ${store.table('metrics_snapshots')} FINAL WHERE run_id = {run_id:String} ORDER BY source, node, snap_seq SETTINGS output_format_json_quote_64bit_integers = 0`,
    { run_id: runId },
  );
}
