/**
 * Versioned schema migrations, applied at start-up. Each migration has a version, a name and
 * idempotent statements; applied versions are recorded in `schema_migrations`, so applying twice
 * equals applying once, and a crash halfway re-runs only what is missing.
 */
import { StoreError } from '../core/errors.ts';
import type { Store } from './client.ts';

export interface Migration {
  readonly version: number;
  readonly name: string;
  /** Statements with `{db}` standing for the database name. Each must be idempotent. */
  readonly statements: readonly string[];
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'transitions',
    statements: [
      // ReplacingMergeTree keyed by (run_id, node, node_seq) — the event id — makes redelivered
      // records collapse into one row; exact reads use FINAL.
      `CREATE TABLE IF NOT EXISTS {db}.transitions (
        schema_version UInt8,
        run_id LowCardinality(String),
        event_id String,
        node UInt16,
        node_seq UInt64,
        protocol LowCardinality(String),
        phase LowCardinality(String),
        view UInt64,
        seq UInt64,
        leader UInt16,
        ts_us Int64,
        node_clock_us Int64,
        ts DateTime64(6, 'UTC') MATERIALIZED fromUnixTimestamp64Micro(ts_us),
        msgs_sent UInt32,
        msgs_received UInt32,
        retransmissions UInt32,
        batch_size UInt32,
        deps_count UInt32,
        latency_us Nullable(UInt64),
        state_hash FixedString(64),
        shadow_hash FixedString(64),
        faults Array(LowCardinality(String)),
        faulty_nodes Array(UInt16),
        ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
      )
      ENGINE = ReplacingMergeTree
      ORDER BY (run_id, node, node_seq)`,
    ],
  },
  {
    version: 2,
    name: 'features_1s',
    statements: [
      // The two tables share most columns, written out in full on purpose: a migration is a
      // frozen record of what was applied, so it must not change when shared code does.
      // Per-second features, per node and per cluster, written by store/features.ts
      // (refreshFeatures) from `transitions FINAL`: recomputing a window replaces its row (newest
      // refreshed_at wins), so redelivered duplicates never count twice. docs/features.md.
      `CREATE TABLE IF NOT EXISTS {db}.features_node_1s (
        run_id LowCardinality(String),
        window_start DateTime('UTC'),
        node UInt16,
        protocol LowCardinality(String),
        transitions UInt64,
        msgs_sent UInt64,
        msgs_received UInt64,
        retransmissions UInt64,
        phase_request UInt64,
        phase_pre_prepare UInt64,
        phase_prepare UInt64,
        phase_commit UInt64,
        phase_execute UInt64,
        phase_reply UInt64,
        phase_checkpoint UInt64,
        phase_view_change UInt64,
        phase_new_view UInt64,
        phase_state_transfer UInt64,
        phase_pre_accept UInt64,
        phase_pre_accept_reply UInt64,
        phase_accept UInt64,
        phase_accept_reply UInt64,
        phase_prepare_reply UInt64,
        view_changes UInt64,
        new_views UInt64,
        recoveries UInt64,
        commits_measured UInt64,
        commit_latency_p50_us Float64,
        commit_latency_p90_us Float64,
        commit_latency_p99_us Float64,
        executed_ops UInt64,
        deps_mean Float64,
        deps_max UInt32,
        hash_mismatches UInt64,
        clock_offset_mean_us Float64,
        clock_offset_max_abs_us UInt64,
        active_faults Array(LowCardinality(String)),
        fault_active UInt8,
        node_faulty UInt8,
        refreshed_at DateTime64(3, 'UTC')
      )
      ENGINE = ReplacingMergeTree(refreshed_at)
      ORDER BY (run_id, window_start, node)`,
      `CREATE TABLE IF NOT EXISTS {db}.features_cluster_1s (
        run_id LowCardinality(String),
        window_start DateTime('UTC'),
        protocol LowCardinality(String),
        nodes_reporting UInt16,
        transitions UInt64,
        msgs_sent UInt64,
        msgs_received UInt64,
        retransmissions UInt64,
        phase_request UInt64,
        phase_pre_prepare UInt64,
        phase_prepare UInt64,
        phase_commit UInt64,
        phase_execute UInt64,
        phase_reply UInt64,
        phase_checkpoint UInt64,
        phase_view_change UInt64,
        phase_new_view UInt64,
        phase_state_transfer UInt64,
        phase_pre_accept UInt64,
        phase_pre_accept_reply UInt64,
        phase_accept UInt64,
        phase_accept_reply UInt64,
        phase_prepare_reply UInt64,
        view_changes UInt64,
        new_views UInt64,
        recoveries UInt64,
        commits_measured UInt64,
        commit_latency_p50_us Float64,
        commit_latency_p90_us Float64,
        commit_latency_p99_us Float64,
        executed_ops UInt64,
        deps_mean Float64,
        deps_max UInt32,
        hash_mismatches UInt64,
        clock_offset_mean_us Float64,
        clock_offset_max_abs_us UInt64,
        active_faults Array(LowCardinality(String)),
        fault_active UInt8,
        faulty_nodes Array(UInt16),
        refreshed_at DateTime64(3, 'UTC')
      )
      ENGINE = ReplacingMergeTree(refreshed_at)
      ORDER BY (run_id, window_start)`,
    ],
  },
  {
    version: 3,
    name: 'counters_uint64_and_trace_gaps',
    statements: [
      // The trace schema accepts counters up to 2^53 - 1 (JavaScript's safe integers); UInt32
      // columns wrapped or truncated anything above 2^32. The columns now hold what the schema
      // accepts. MODIFY COLUMN to the type a column already has is a no-op, so this re-runs safely.
      ...['msgs_sent', 'msgs_received', 'retransmissions', 'batch_size', 'deps_count'].map((column) => `ALTER TABLE {db}.transitions MODIFY COLUMN ${column} UInt64`),
      `ALTER TABLE {db}.features_node_1s MODIFY COLUMN deps_max UInt64`,
      `ALTER TABLE {db}.features_cluster_1s MODIFY COLUMN deps_max UInt64`,
      // Records a producer declared lost (core/gap-record.ts), keyed like the records they stand
      // for, so produced = stored + dead-lettered + gaps can be checked per node.
      `CREATE TABLE IF NOT EXISTS {db}.trace_gaps (
        run_id LowCardinality(String),
        gap_id String,
        node UInt16,
        node_seq_first UInt64,
        node_seq_last UInt64,
        records UInt64,
        reason LowCardinality(String),
        declared_at_us Int64,
        ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
      )
      ENGINE = ReplacingMergeTree
      ORDER BY (run_id, node, node_seq_first)`,
    ],
  },
  {
    version: 4,
    name: 'trace_v2_and_metrics_snapshots',
    statements: [
      // Trace schema 2 (core/trace-schema.ts): what a Byzantine hook altered, and the recovering
      // label. Rows of schema 1 read as 0 / false, which is what they were: no hook counted, no
      // recovery labelled. Placed where the field table puts them, so SELECT * keeps its order.
      `ALTER TABLE {db}.transitions ADD COLUMN IF NOT EXISTS byzantine_altered UInt64 DEFAULT 0 AFTER latency_us`,
      `ALTER TABLE {db}.transitions ADD COLUMN IF NOT EXISTS recovering Bool DEFAULT false AFTER faulty_nodes`,
      // The second record kind (core/metrics-snapshot.ts), one column per field of its table,
      // keyed like its id so a redelivered snapshot collapses; reads use FINAL.
      `CREATE TABLE IF NOT EXISTS {db}.metrics_snapshots (
        record_type LowCardinality(String),
        schema_version UInt8,
        run_id LowCardinality(String),
        snapshot_id String,
        source LowCardinality(String),
        node UInt16,
        snap_seq UInt64,
        protocol LowCardinality(String),
        ts_us Int64,
        node_clock_us Int64,
        interval_us UInt64,
        view UInt64,
        peers Array(UInt16),
        sent_to Array(UInt64),
        received_from Array(UInt64),
        quorum_last_peer Array(UInt64),
        votes_from Array(UInt64),
        vote_wait_us_sum Array(UInt64),
        rejected_bad_mac UInt64,
        rejected_malformed UInt64,
        rejected_wrong_digest UInt64,
        rejected_wrong_view UInt64,
        rejected_outside_watermarks UInt64,
        rejected_duplicate UInt64,
        rejected_not_from_primary UInt64,
        rejected_conflicting_pre_prepare UInt64,
        timer_names Array(LowCardinality(String)),
        timer_fired Array(UInt64),
        quorums_completed UInt64,
        quorum_wait_us_sum UInt64,
        quorum_wait_us_max UInt64,
        backlog UInt64,
        log_size UInt64,
        client_ops_completed UInt64,
        client_latency_us_sum UInt64,
        client_latency_us_max UInt64,
        client_retries UInt64,
        client_pending UInt64,
        faults Array(LowCardinality(String)),
        faulty_nodes Array(UInt16),
        recovering Bool,
        ts DateTime64(6, 'UTC') MATERIALIZED fromUnixTimestamp64Micro(ts_us),
        ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
      )
      ENGINE = ReplacingMergeTree
      ORDER BY (run_id, source, node, snap_seq)`,
    ],
  },
  {
    version: 5,
    name: 'features_any_window',
    statements: [
      // Features at any window width (features.window_ms), per node and per cluster, written by
      // store/features.ts (refreshFeatures) from `transitions FINAL`: several widths coexist,
      // keyed by (run_id, window_ms, window_start[, node]); recomputing a window replaces its row
      // (newest refreshed_at wins). Every window of every node of a run has a row (zero-filled);
      // labels are not stored here (store/labels.ts computes them). The columns follow
      // store/feature-registry.ts as it was when this was written; a test checks they still do.
      // Written out in full on purpose: a migration is a frozen record of what was applied.
      `CREATE TABLE IF NOT EXISTS {db}.features_node (
        run_id LowCardinality(String),
        window_ms UInt32,
        window_start DateTime64(3, 'UTC'),
        node UInt16,
        protocol LowCardinality(String),
        partial UInt8,
        transitions UInt64,
        msgs_sent UInt64,
        msgs_received UInt64,
        retransmissions UInt64,
        phase_request UInt64,
        phase_pre_prepare UInt64,
        phase_prepare UInt64,
        phase_commit UInt64,
        phase_execute UInt64,
        phase_reply UInt64,
        phase_checkpoint UInt64,
        phase_view_change UInt64,
        phase_new_view UInt64,
        phase_state_transfer UInt64,
        phase_pre_accept UInt64,
        phase_pre_accept_reply UInt64,
        phase_accept UInt64,
        phase_accept_reply UInt64,
        phase_prepare_reply UInt64,
        view_changes UInt64,
        new_views UInt64,
        recoveries UInt64,
        commits_measured UInt64,
        commit_latency_p50_us Float64,
        commit_latency_p90_us Float64,
        commit_latency_p99_us Float64,
        deps_mean Float64,
        deps_max UInt64,
        hash_mismatches UInt64,
        clock_offset_mean_us Float64,
        clock_offset_max_abs_us UInt64,
        requests_received UInt64,
        executed_ops UInt64,
        msgs_sent_per_op Float64,
        msgs_received_per_op Float64,
        transitions_per_op Float64,
        ops_per_request Float64,
        retransmissions_per_msg Float64,
        msgs_sent_per_transition Float64,
        msgs_received_per_transition Float64,
        hash_mismatches_per_transition Float64,
        phase_request_share Float64,
        phase_pre_prepare_share Float64,
        phase_prepare_share Float64,
        phase_commit_share Float64,
        phase_execute_share Float64,
        phase_reply_share Float64,
        phase_checkpoint_share Float64,
        phase_view_change_share Float64,
        phase_new_view_share Float64,
        phase_state_transfer_share Float64,
        phase_pre_accept_share Float64,
        phase_pre_accept_reply_share Float64,
        phase_accept_share Float64,
        phase_accept_reply_share Float64,
        phase_prepare_reply_share Float64,
        snapshots UInt64,
        rejected_bad_mac UInt64,
        rejected_malformed UInt64,
        rejected_wrong_digest UInt64,
        rejected_wrong_view UInt64,
        rejected_outside_watermarks UInt64,
        rejected_duplicate UInt64,
        rejected_not_from_primary UInt64,
        rejected_conflicting_pre_prepare UInt64,
        rejected_total UInt64,
        timers_fired UInt64,
        quorums_completed UInt64,
        quorum_wait_us UInt64,
        quorum_wait_max_us UInt64,
        votes_received UInt64,
        vote_wait_us UInt64,
        slowest_peer_vote_wait_us Float64,
        peers_silent UInt64,
        backlog_max UInt64,
        log_size_max UInt64,
        view_max UInt64,
        quorum_wait_mean_us Float64,
        vote_wait_mean_us Float64,
        rejected_per_msg Float64,
        refreshed_at DateTime64(3, 'UTC')
      )
      ENGINE = ReplacingMergeTree(refreshed_at)
      ORDER BY (run_id, window_ms, window_start, node)`,
      `CREATE TABLE IF NOT EXISTS {db}.features_cluster (
        run_id LowCardinality(String),
        window_ms UInt32,
        window_start DateTime64(3, 'UTC'),
        protocol LowCardinality(String),
        partial UInt8,
        nodes_reporting UInt16,
        transitions UInt64,
        msgs_sent UInt64,
        msgs_received UInt64,
        retransmissions UInt64,
        phase_request UInt64,
        phase_pre_prepare UInt64,
        phase_prepare UInt64,
        phase_commit UInt64,
        phase_execute UInt64,
        phase_reply UInt64,
        phase_checkpoint UInt64,
        phase_view_change UInt64,
        phase_new_view UInt64,
        phase_state_transfer UInt64,
        phase_pre_accept UInt64,
        phase_pre_accept_reply UInt64,
        phase_accept UInt64,
        phase_accept_reply UInt64,
        phase_prepare_reply UInt64,
        view_changes UInt64,
        new_views UInt64,
        recoveries UInt64,
        commits_measured UInt64,
        commit_latency_p50_us Float64,
        commit_latency_p90_us Float64,
        commit_latency_p99_us Float64,
        deps_mean Float64,
        deps_max UInt64,
        hash_mismatches UInt64,
        clock_offset_mean_us Float64,
        clock_offset_max_abs_us UInt64,
        requests_received UInt64,
        executed_ops UInt64,
        msgs_sent_per_op Float64,
        msgs_received_per_op Float64,
        transitions_per_op Float64,
        ops_per_request Float64,
        retransmissions_per_msg Float64,
        msgs_sent_per_transition Float64,
        msgs_received_per_transition Float64,
        hash_mismatches_per_transition Float64,
        phase_request_share Float64,
        phase_pre_prepare_share Float64,
        phase_prepare_share Float64,
        phase_commit_share Float64,
        phase_execute_share Float64,
        phase_reply_share Float64,
        phase_checkpoint_share Float64,
        phase_view_change_share Float64,
        phase_new_view_share Float64,
        phase_state_transfer_share Float64,
        phase_pre_accept_share Float64,
        phase_pre_accept_reply_share Float64,
        phase_accept_share Float64,
        phase_accept_reply_share Float64,
        phase_prepare_reply_share Float64,
        snapshots UInt64,
        rejected_bad_mac UInt64,
        rejected_malformed UInt64,
        rejected_wrong_digest UInt64,
        rejected_wrong_view UInt64,
        rejected_outside_watermarks UInt64,
        rejected_duplicate UInt64,
        rejected_not_from_primary UInt64,
        rejected_conflicting_pre_prepare UInt64,
        rejected_total UInt64,
        timers_fired UInt64,
        quorums_completed UInt64,
        quorum_wait_us UInt64,
        quorum_wait_max_us UInt64,
        votes_received UInt64,
        vote_wait_us UInt64,
        backlog_max UInt64,
        log_size_max UInt64,
        view_max UInt64,
        quorum_wait_mean_us Float64,
        vote_wait_mean_us Float64,
        rejected_per_msg Float64,
        client_ops_completed UInt64,
        client_latency_us UInt64,
        client_latency_max_us UInt64,
        client_retries UInt64,
        client_pending_max UInt64,
        client_latency_mean_us Float64,
        refreshed_at DateTime64(3, 'UTC')
      )
      ENGINE = ReplacingMergeTree(refreshed_at)
      ORDER BY (run_id, window_ms, window_start)`,
      // The per-second tables of migration 2 are replaced: nothing writes them any more (features
      // at 1 s are window_ms = 1000 in the tables above), so kept they would only go stale and
      // mislead; their content is derived data, recomputed from `transitions` by refreshFeatures.
      `DROP TABLE IF EXISTS {db}.features_node_1s`,
      `DROP TABLE IF EXISTS {db}.features_cluster_1s`,
    ],
  },
];

export interface MigrationReport {
  readonly applied: number[];
  readonly alreadyApplied: number[];
}

export async function migrate(store: Store, migrations: readonly Migration[] = MIGRATIONS): Promise<MigrationReport> {
  const db = store.database;
  await store.client.command({
    query: `CREATE TABLE IF NOT EXISTS ${db}.schema_migrations (version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = ReplacingMergeTree ORDER BY version`,
  });
  const done = new Set(await appliedVersions(store));
  const applied: number[] = [];
  const alreadyApplied: number[] = [];
  for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
    if (done.has(migration.version)) {
      alreadyApplied.push(migration.version);
      continue;
    }
    for (const statement of migration.statements) {
      try {
        await store.client.command({ query: statement.replaceAll('{db}', db) });
      } catch (cause) {
        throw new StoreError('MIGRATION_FAILED', `migration ${migration.version} (${migration.name}) failed: ${(cause as Error).message}`, { cause });
      }
    }
    await store.client.insert({ table: `${db}.schema_migrations`, values: [{ version: migration.version, name: migration.name }], format: 'JSONEachRow' });
    applied.push(migration.version);
  }
  return { applied, alreadyApplied };
}

export async function appliedVersions(store: Store): Promise<number[]> {
  const result = await store.client.query({ query: `SELECT DISTINCT version FROM ${store.database}.schema_migrations ORDER BY version`, format: 'JSONEachRow' });
  const rows = await result.json<{ version: number }>();
  return rows.map((r) => Number(r.version));
}
