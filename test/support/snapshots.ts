import { snapshotIdOf, type MetricsSnapshot } from '../../core/metrics-snapshot.ts';

/** A valid replica snapshot of a 4-node cluster with sensible values; tests override what they exercise. */
export function makeSnapshot(overrides: Partial<MetricsSnapshot> = {}): MetricsSnapshot {
  const run_id = overrides.run_id ?? 'run-test';
  const node = overrides.node ?? 0;
  const snap_seq = overrides.snap_seq ?? 0;
  const source = overrides.source ?? 'replica';
  return {
    record_type: 'metrics',
    schema_version: 1,
    run_id,
    snapshot_id: snapshotIdOf(run_id, source, node, snap_seq),
    source,
    node,
    snap_seq,
    protocol: 'pbft',
    ts_us: 1_767_225_600_100_000 + snap_seq * 100_000,
    node_clock_us: 1_767_225_600_100_000 + snap_seq * 100_000,
    interval_us: 100_000,
    view: 0,
    peers: [1, 2, 3],
    sent_to: [10, 10, 9],
    received_from: [8, 9, 7],
    quorum_last_peer: [2, 1, 0],
    votes_from: [6, 6, 5],
    vote_wait_us_sum: [3_000, 3_600, 9_000],
    rejected_bad_mac: 0,
    rejected_malformed: 0,
    rejected_wrong_digest: 0,
    rejected_wrong_view: 0,
    rejected_outside_watermarks: 0,
    rejected_duplicate: 1,
    rejected_not_from_primary: 0,
    rejected_conflicting_pre_prepare: 0,
    timer_names: ['pbft/progress'],
    timer_fired: [1],
    quorums_completed: 3,
    quorum_wait_us_sum: 2_400,
    quorum_wait_us_max: 1_100,
    backlog: 2,
    log_size: 12,
    client_ops_completed: 0,
    client_latency_us_sum: 0,
    client_latency_us_max: 0,
    client_retries: 0,
    client_pending: 0,
    faults: [],
    faulty_nodes: [],
    recovering: false,
    ...overrides,
  };
}
