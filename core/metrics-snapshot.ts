/**
 * The metrics snapshot: the second record kind. Every `telemetry.snapshot_interval_ms` (virtual
 * time in the simulator, wall time over TCP) each live replica and each client reports counters
 * for the interval just ended, the way a real system exposes Prometheus metrics (etcd's peer
 * round-trip times, proposals failed, leader changes, slow applies): traffic per peer, rejections
 * by reason, timers fired by name, quorum waits and which peer completed each quorum last, backlog
 * and log sizes, and client-side latency and retries. A crashed node reports nothing: the missing
 * snapshot is itself evidence, which the features zero-fill.
 *
 * Like the trace record, it is defined once, by its field table; it travels on the same topic with
 * the same key as its node's transitions and lands in `metrics_snapshots`.
 */
import { field, fieldNamesOf, jsonEncoderOf, zodObjectOf, type FieldTable, type RecordOf } from './record-fields.ts';
import { fieldErrorsOf } from './field-errors.ts';
import { FAULT_KINDS, PROTOCOLS, type ValidationResult } from './trace-schema.ts';

export const SNAPSHOT_SCHEMA_VERSION = 1;
/** The discriminator: trace records have no `record_type`; gaps say `gap`, snapshots `metrics`. */
export const SNAPSHOT_RECORD_TYPE = 'metrics';

/** Why a replica refused a message, one counter each. */
export const REJECT_REASONS = [
  'bad_mac',
  'malformed',
  'wrong_digest',
  'wrong_view',
  'outside_watermarks',
  'duplicate',
  'not_from_primary',
  'conflicting_pre_prepare',
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

export const SNAPSHOT_SOURCES = ['replica', 'client'] as const;
export type SnapshotSource = (typeof SNAPSHOT_SOURCES)[number];

/** Per-peer and per-timer arrays are bounded like the trace's node lists. */
const PEERS_MAX = 1024;
const TIMERS_MAX = 64;

const rejectionFields = Object.fromEntries(
  REJECT_REASONS.map((reason) => [`rejected_${reason}`, field.uint(`rejected_${reason}`, 'UInt64', `Messages rejected in the interval because of ${reason.replaceAll('_', ' ')}.`)]),
) as { [R in RejectReason as `rejected_${R}`]: ReturnType<typeof field.uint> };

export const SNAPSHOT_FIELD_TABLE = {
  record_type: field.enumOf([SNAPSHOT_RECORD_TYPE], 'Always `metrics`: tells a snapshot from a trace record on the shared topic.'),
  schema_version: field.literal(SNAPSHOT_SCHEMA_VERSION, 'UInt8', 'Version of this table.'),
  run_id: field.text(1, 128, 'LowCardinality(String)', 'The run the snapshot belongs to.'),
  snapshot_id: field.text(1, 240, 'String', 'Deterministic `${run_id}/${source}/${node}/m/${snap_seq}`: a redelivered snapshot collapses.'),
  source: field.enumOf(SNAPSHOT_SOURCES, 'replica, or client (then `node` is the client id).'),
  node: field.nodeId('The replica (or client) reporting.'),
  snap_seq: field.uint('snap_seq', 'UInt64', 'Per-source counter starting at 0 (restarts continue it; an amnesiac restart too).'),
  protocol: field.enumOf(PROTOCOLS, 'pbft or epaxos.'),
  ts_us: field.uint('ts_us', 'Int64', 'True time at the end of the interval, microseconds since the Unix epoch.'),
  node_clock_us: field.uint('node_clock_us', 'Int64', 'The reporter\'s own clock at the same moment.'),
  interval_us: field.uint('interval_us', 'UInt64', 'Length of the interval the counters cover, microseconds (true time).'),
  view: field.uint('view', 'UInt64', 'The replica\'s current view (PBFT); 0 for EPaxos (ballots are per instance) and for a client.'),
  peers: field.nodeArray(PEERS_MAX, 'Peer ids, the index of the per-peer arrays below.'),
  sent_to: field.uintArray('sent_to', PEERS_MAX, 'Messages sent to each peer in the interval.'),
  received_from: field.uintArray('received_from', PEERS_MAX, 'Messages delivered from each peer in the interval (before authentication).'),
  quorum_last_peer: field.uintArray('quorum_last_peer', PEERS_MAX, 'How many of the interval\'s quorums each peer completed last (the slowest member a quorum waited for).'),
  votes_from: field.uintArray('votes_from', PEERS_MAX, 'Votes received from each peer in the interval (late ones, after their quorum completed, included).'),
  vote_wait_us_sum: field.uintArray('vote_wait_us_sum', PEERS_MAX, 'Per peer, the sum of the waits for those votes, microseconds (node clock): like etcd\'s peer round-trip time, it singles out a slow peer that quorums leave out.'),
  ...rejectionFields,
  timer_names: field.textArray(64, TIMERS_MAX, 'Names of the timers that fired in the interval, sorted.'),
  timer_fired: field.uintArray('timer_fired', TIMERS_MAX, 'How often each timer in timer_names fired.'),
  quorums_completed: field.uint('quorums_completed', 'UInt64', 'Quorums (prepare, commit, fast/slow path, ...) completed in the interval.'),
  quorum_wait_us_sum: field.uint('quorum_wait_us_sum', 'UInt64', 'Sum over those quorums of the wait from the first vote to the completing one, microseconds (node clock).'),
  quorum_wait_us_max: field.uint('quorum_wait_us_max', 'UInt64', 'The longest of those waits, microseconds.'),
  backlog: field.uint('backlog', 'UInt64', 'Work accepted but not finished at the end of the interval (requests pending, instances uncommitted).'),
  log_size: field.uint('log_size', 'UInt64', 'Protocol log entries held at the end of the interval.'),
  client_ops_completed: field.uint('client_ops_completed', 'UInt64', 'Client operations completed in the interval (client snapshots).'),
  client_latency_us_sum: field.uint('client_latency_us_sum', 'UInt64', 'Sum of their latencies, invocation to final reply, microseconds.'),
  client_latency_us_max: field.uint('client_latency_us_max', 'UInt64', 'The largest of their latencies, microseconds.'),
  client_retries: field.uint('client_retries', 'UInt64', 'Requests the client re-sent in the interval.'),
  client_pending: field.uint('client_pending', 'UInt64', 'Operations in flight at the end of the interval.'),
  faults: field.enumArray(FAULT_KINDS, FAULT_KINDS.length, 'Fault kinds active at the end of the interval (ground truth).'),
  faulty_nodes: field.nodeArray(1024, 'Nodes targeted by those faults.'),
  recovering: field.flag('The cluster is back from a fault but not yet normal again.'),
} as const satisfies FieldTable;

export type MetricsSnapshot = RecordOf<typeof SNAPSHOT_FIELD_TABLE>;

export const SNAPSHOT_FIELDS = fieldNamesOf(SNAPSHOT_FIELD_TABLE);

export const metricsSnapshotSchema = zodObjectOf(SNAPSHOT_FIELD_TABLE).superRefine((s, ctx) => {
  const expected = snapshotIdOf(s.run_id, s.source, s.node, s.snap_seq);
  if (s.snapshot_id !== expected) ctx.addIssue({ code: 'custom', path: ['snapshot_id'], message: `expected ${expected} (run_id/source/node/m/snap_seq)` });
  for (const name of ['sent_to', 'received_from', 'quorum_last_peer', 'votes_from', 'vote_wait_us_sum'] as const) {
    if (s[name].length !== s.peers.length) ctx.addIssue({ code: 'custom', path: [name], message: `expected one entry per peer (${s.peers.length}), got ${s[name].length}` });
  }
  if (s.timer_fired.length !== s.timer_names.length) ctx.addIssue({ code: 'custom', path: ['timer_fired'], message: `expected one count per timer name (${s.timer_names.length}), got ${s.timer_fired.length}` });
  if (s.quorum_wait_us_max > s.quorum_wait_us_sum) ctx.addIssue({ code: 'custom', path: ['quorum_wait_us_max'], message: 'must not exceed quorum_wait_us_sum' });
});

export function snapshotIdOf(runId: string, source: SnapshotSource, node: number, snapSeq: number): string {
  return `${runId}/${source}/${node}/m/${snapSeq}`;
}

export const snapshotJson: (snapshot: MetricsSnapshot) => string = jsonEncoderOf(SNAPSHOT_FIELD_TABLE);

/** True for anything that claims to be a snapshot (then validate it with `validateMetricsSnapshot`). */
export function claimsToBeSnapshot(value: unknown): boolean {
  return typeof value === 'object' && value !== null && (value as { record_type?: unknown }).record_type === SNAPSHOT_RECORD_TYPE;
}

export function validateMetricsSnapshot(input: unknown): ValidationResult<MetricsSnapshot> {
  const parsed = metricsSnapshotSchema.safeParse(input);
  if (parsed.success) return { ok: true, value: parsed.data as MetricsSnapshot };
  return { ok: false, errors: fieldErrorsOf(parsed.error.issues, input) };
}
