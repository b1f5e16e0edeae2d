/**
 * The feature registry: the one definition of every feature the models read. Each entry names
 * the feature, its unit, the levels it exists at, the source rows it is computed from, its kind
 * (raw, normalised by load, or a load covariate) and its ClickHouse definition. Everything else
 * is derived from this list: the SELECT that computes the feature tables (store/features.ts), the
 * columns migration 5 must have (checked by a test), the tables of docs/features.md (checked by
 * a test) and the feature-spec hash a model artefact saves, so a model refuses features it was
 * not trained on (`assertFeatureSpec`).
 *
 * Labels (ground truth) are not features and live apart, in store/labels.ts.
 */
import { createHash } from 'node:crypto';
import { LatticeError } from '../core/errors.ts';
import { REJECT_REASONS } from '../core/metrics-snapshot.ts';
import { PHASES } from '../core/trace-schema.ts';

export type FeatureLevel = 'node' | 'cluster';
export const FEATURE_LEVELS: readonly FeatureLevel[] = ['node', 'cluster'];
/** raw: an aggregate of the source; normalised: a raw feature divided by a load; covariate: the load itself. */
export type FeatureKind = 'raw' | 'normalised' | 'covariate';
/** aggregate: an aggregate expression over the source rows of one window (and node); row: an expression over other features of the same row. */
export type FeatureStage = 'aggregate' | 'row';
export type FeatureType = 'UInt16' | 'UInt64' | 'Float64';

/**
 * Where aggregate features come from: the trace, and the metrics snapshots of replicas and of
 * clients (core/metrics-snapshot.ts). Each source is aggregated on its own and joined to the
 * window grid by (run, window[, node]).
 */
export interface FeatureSourceSpec {
  readonly table: string;
  /** Read with FINAL (a ReplacingMergeTree whose duplicates must not count). */
  readonly final: boolean;
  /** Event time of a row, microseconds since the epoch (true time, not a node's clock). */
  readonly timeUs: string;
  readonly node: string;
  /** Which of the table's rows belong to this source (all when absent). */
  readonly where?: string;
}

export const FEATURE_SOURCES = {
  transitions: { table: 'transitions', final: true, timeUs: 'ts_us', node: 'node' },
  // A snapshot at time T counts what happened in the interval ending at T: `ts_us - 1` puts one
  // taken on a window's end into that window, not the next.
  replica_snapshots: { table: 'metrics_snapshots', final: true, timeUs: 'ts_us - 1', node: 'node', where: "source = 'replica'" },
  // Clients are not nodes: their snapshots make cluster-level features only.
  client_snapshots: { table: 'metrics_snapshots', final: true, timeUs: 'ts_us - 1', node: 'node', where: "source = 'client'" },
} as const satisfies Record<string, FeatureSourceSpec>;
export type FeatureSourceName = keyof typeof FEATURE_SOURCES;

export interface FeatureSpec {
  readonly name: string;
  readonly unit: string;
  readonly levels: readonly FeatureLevel[];
  readonly source: FeatureSourceName;
  readonly kind: FeatureKind;
  readonly stage: FeatureStage;
  readonly type: FeatureType;
  /** ClickHouse expression the column is computed from (see `stage`). */
  readonly definition: string;
  readonly doc: string;
}

/** The columns that say which row it is, before the features. */
export interface KeyColumn {
  readonly name: string;
  readonly type: string;
  readonly levels: readonly FeatureLevel[];
  readonly doc: string;
}

export const KEY_COLUMNS: readonly KeyColumn[] = [
  { name: 'run_id', type: 'LowCardinality(String)', levels: FEATURE_LEVELS, doc: 'the run' },
  { name: 'window_ms', type: 'UInt32', levels: FEATURE_LEVELS, doc: 'window width (features.window_ms); several widths coexist in one table' },
  { name: 'window_start', type: "DateTime64(3, 'UTC')", levels: FEATURE_LEVELS, doc: 'start of the window: ts_us (true time) floored to a multiple of window_ms since the epoch' },
  { name: 'node', type: 'UInt16', levels: ['node'], doc: 'the node (every node of the run has a row in every window)' },
  { name: 'protocol', type: 'LowCardinality(String)', levels: FEATURE_LEVELS, doc: '`pbft` or `epaxos` (a run has one)' },
  { name: 'partial', type: 'UInt8', levels: FEATURE_LEVELS, doc: "1 for the run's last window as of the refresh (the run's newest record falls in it, so it covers less than window_ms of the run); 0 otherwise" },
];

const BOTH = FEATURE_LEVELS;
const ALL_PHASES: readonly string[] = [...new Set<string>([...PHASES.pbft, ...PHASES.epaxos])];
/** Every phase of every protocol, each counted in its own `phase_<name>` column. */
export const FEATURE_PHASES: readonly string[] = ALL_PHASES;

/** The sample of "commit latency": when an operation is first known committed at a node. */
const COMMIT_SAMPLE = `latency_us IS NOT NULL AND ((protocol = 'epaxos' AND phase = 'commit') OR (protocol = 'pbft' AND phase = 'execute'))`;
/** EPaxos dependency counts are read off each instance's commit (its final dependency set). */
const DEPS_SAMPLE = `protocol = 'epaxos' AND phase = 'commit'`;

const raw = (name: string, unit: string, type: FeatureType, definition: string, doc: string, levels: readonly FeatureLevel[] = BOTH): FeatureSpec => ({ name, unit, levels, source: 'transitions', kind: 'raw', stage: 'aggregate', type, definition, doc });
const covariate = (name: string, unit: string, definition: string, doc: string): FeatureSpec => ({ name, unit, levels: BOTH, source: 'transitions', kind: 'covariate', stage: 'aggregate', type: 'UInt64', definition, doc });
/**
 * The 0/0 rule: a ratio divides by max(denominator, 1). 0/0 is 0 (a silent window is not an
 * anomaly of the ratio) and x/0 is x (messages with no operation to show for them stay visible
 * instead of vanishing), and no NaN or infinity ever reaches the table.
 */
const ratio = (name: string, unit: string, numerator: string, denominator: string, doc: string): FeatureSpec => ({ name, unit, levels: BOTH, source: 'transitions', kind: 'normalised', stage: 'row', type: 'Float64', definition: `${numerator} / greatest(${denominator}, 1)`, doc });
/** An aggregate of the replicas' metrics snapshots. */
const snap = (name: string, unit: string, type: FeatureType, definition: string, doc: string, levels: readonly FeatureLevel[] = BOTH): FeatureSpec => ({ name, unit, levels, source: 'replica_snapshots', kind: 'raw', stage: 'aggregate', type, definition, doc });
/** An aggregate of the clients' metrics snapshots (cluster level: a client is not a node). */
const client = (name: string, unit: string, definition: string, doc: string): FeatureSpec => ({ name, unit, levels: ['cluster'], source: 'client_snapshots', kind: 'raw', stage: 'aggregate', type: 'UInt64', definition, doc });
/** A ratio over features that exist at `levels` only (the 0/0 rule as `ratio`). */
const ratioAt = (levels: readonly FeatureLevel[], name: string, unit: string, numerator: string, denominator: string, doc: string): FeatureSpec => ({ ...ratio(name, unit, numerator, denominator, doc), levels });
const quantile = (q: number) => `if(countIf(${COMMIT_SAMPLE}) = 0, 0, quantileExactIf(${q})(toFloat64(assumeNotNull(latency_us)), ${COMMIT_SAMPLE}))`;

export const FEATURES: readonly FeatureSpec[] = [
  raw('nodes_reporting', 'nodes', 'UInt16', 'uniqExact(node)', 'distinct nodes with a record in the window (a crashed or cut-off node stops reporting)', ['cluster']),
  raw('transitions', 'transitions', 'UInt64', 'count()', 'records'),
  raw('msgs_sent', 'messages', 'UInt64', 'sum(msgs_sent)', "sum of the records' msgs_sent"),
  raw('msgs_received', 'messages', 'UInt64', 'sum(msgs_received)', "sum of the records' msgs_received (deliveries, counted before the MAC check)"),
  raw('retransmissions', 'messages', 'UInt64', 'sum(retransmissions)', 'messages re-sent on timeouts'),
  ...ALL_PHASES.map((phase) => raw(`phase_${phase}`, 'transitions', 'UInt64', `countIf(phase = '${phase}')`, `records of phase ${phase}${phase === 'prepare' ? " (PBFT's prepare, or EPaxos' recovery prepare: see recoveries)" : ''}`)),
  raw('view_changes', 'transitions', 'UInt64', `countIf(protocol = 'pbft' AND phase = 'view_change')`, 'PBFT view_change records'),
  raw('new_views', 'transitions', 'UInt64', `countIf(protocol = 'pbft' AND phase = 'new_view')`, 'PBFT new_view records'),
  raw('recoveries', 'transitions', 'UInt64', `countIf(protocol = 'epaxos' AND phase = 'prepare')`, 'EPaxos prepare records (explicit prepare = instance recovery)'),
  raw('commits_measured', 'samples', 'UInt64', `countIf(${COMMIT_SAMPLE})`, 'commit-latency samples: records with latency_us that mark an operation committed at the node (EPaxos commit, PBFT execute)'),
  raw('commit_latency_p50_us', 'µs', 'Float64', quantile(0.5), 'quantileExact of the samples: the sample at 0-based position ⌊q·n⌋ of the sorted samples; 0 without samples'),
  raw('commit_latency_p90_us', 'µs', 'Float64', quantile(0.9), 'as p50, q = 0.9'),
  raw('commit_latency_p99_us', 'µs', 'Float64', quantile(0.99), 'as p50, q = 0.99'),
  raw('deps_mean', 'dependencies', 'Float64', `if(countIf(${DEPS_SAMPLE}) = 0, 0, avgIf(deps_count, ${DEPS_SAMPLE}))`, "EPaxos dependency-graph size: mean deps_count over commit records (each instance's final dependency set); 0 without any (PBFT)"),
  raw('deps_max', 'dependencies', 'UInt64', `maxIf(deps_count, ${DEPS_SAMPLE})`, 'max of the same'),
  raw('hash_mismatches', 'transitions', 'UInt64', 'countIf(state_hash != shadow_hash)', 'records whose state_hash differs from shadow_hash (state corruption evidence)'),
  raw('clock_offset_mean_us', 'µs', 'Float64', 'avg(node_clock_us - ts_us)', "mean of the node's clock minus true time (clock skew); 0 in a window without records"),
  raw('clock_offset_max_abs_us', 'µs', 'UInt64', 'max(abs(node_clock_us - ts_us))', 'max of its absolute value'),
  covariate('requests_received', 'requests', `countIf(phase = 'request')`, 'offered load: request records (a request new to the node; PBFT records it at the primary and at each backup it is relayed to, EPaxos at its command leader)'),
  covariate('executed_ops', 'operations', `sumIf(batch_size, phase = 'execute')`, 'client operations executed (sum of batch_size over execute records; at cluster level summed over the replicas, each executing every operation)'),
  ratio('msgs_sent_per_op', 'messages/operation', 'msgs_sent', 'executed_ops', 'messages sent per executed operation'),
  ratio('msgs_received_per_op', 'messages/operation', 'msgs_received', 'executed_ops', 'messages received per executed operation'),
  ratio('transitions_per_op', 'transitions/operation', 'transitions', 'executed_ops', 'records per executed operation'),
  ratio('ops_per_request', 'operations/request', 'executed_ops', 'requests_received', 'executed operations per request received (falls behind 1, or n at cluster level for PBFT, when the cluster stops keeping up)'),
  ratio('retransmissions_per_msg', 'messages/message', 'retransmissions', 'msgs_sent', 'share of sent messages that were re-sent'),
  ratio('msgs_sent_per_transition', 'messages/transition', 'msgs_sent', 'transitions', 'messages sent per record'),
  ratio('msgs_received_per_transition', 'messages/transition', 'msgs_received', 'transitions', 'messages received per record (rises when deliveries stop producing transitions, e.g. MAC-rejected messages)'),
  ratio('hash_mismatches_per_transition', 'share', 'hash_mismatches', 'transitions', 'share of records with a shadow mismatch'),
  ...ALL_PHASES.map((phase) => ratio(`phase_${phase}_share`, 'share', `phase_${phase}`, 'transitions', `share of the records that are of phase ${phase}`)),
  // ---- from the replicas' metrics snapshots (one per live replica per snapshot interval) ----
  snap('snapshots', 'snapshots', 'UInt64', 'count()', 'metrics snapshots in the window (a crashed replica sends none: with the default 100 ms interval and window, 1 per live node)'),
  ...REJECT_REASONS.map((reason) => snap(`rejected_${reason}`, 'messages', 'UInt64', `sum(rejected_${reason})`, `messages refused for ${reason.replaceAll('_', ' ')}`)),
  snap('rejected_total', 'messages', 'UInt64', `sum(${REJECT_REASONS.map((r) => `rejected_${r}`).join(' + ')})`, 'messages refused, every reason'),
  snap('timers_fired', 'timers', 'UInt64', 'sum(arraySum(timer_fired))', 'protocol timers that fired (retransmits, progress and view-change timeouts, ticks)'),
  snap('quorums_completed', 'quorums', 'UInt64', 'sum(quorums_completed)', 'quorums completed (prepare and commit; fast, slow or accept)'),
  snap('quorum_wait_us', 'µs', 'UInt64', 'sum(quorum_wait_us_sum)', 'total wait of those quorums, first vote to the completing one'),
  snap('quorum_wait_max_us', 'µs', 'UInt64', 'max(quorum_wait_us_max)', 'longest quorum wait'),
  snap('votes_received', 'votes', 'UInt64', 'sum(arraySum(votes_from))', 'votes received from peers, late ones included'),
  snap('vote_wait_us', 'µs', 'UInt64', 'sum(arraySum(vote_wait_us_sum))', 'total wait for those votes'),
  snap('slowest_peer_vote_wait_us', 'µs', 'Float64', 'arrayMax(arrayMap((w, n) -> w / greatest(n, 1), sumForEach(vote_wait_us_sum), sumForEach(votes_from)))', "the slowest peer's mean vote wait as this node saw it: singles out a slow node that quorums leave out", ['node']),
  snap('peers_silent', 'peers', 'UInt64', 'toUInt64(arrayCount((x) -> x = 0, sumForEach(received_from)))', 'peers this node received nothing from in the window (0 when the node sent no snapshot)', ['node']),
  snap('backlog_max', 'items', 'UInt64', 'max(backlog)', 'largest backlog reported (requests pending, instances not executed)'),
  snap('log_size_max', 'entries', 'UInt64', 'max(log_size)', 'largest protocol log reported'),
  snap('view_max', 'view', 'UInt64', 'max(view)', 'highest PBFT view reported (0 for EPaxos)'),
  ratio('quorum_wait_mean_us', 'µs', 'quorum_wait_us', 'quorums_completed', 'mean quorum wait'),
  ratio('vote_wait_mean_us', 'µs', 'vote_wait_us', 'votes_received', 'mean wait per vote'),
  ratio('rejected_per_msg', 'messages/message', 'rejected_total', 'msgs_received', 'share of delivered messages refused'),
  // ---- from the clients' metrics snapshots ----
  client('client_ops_completed', 'operations', 'sum(client_ops_completed)', 'operations the clients completed'),
  client('client_latency_us', 'µs', 'sum(client_latency_us_sum)', 'total client latency of those operations, invocation to final reply'),
  client('client_latency_max_us', 'µs', 'max(client_latency_us_max)', 'longest client latency'),
  client('client_retries', 'requests', 'sum(client_retries)', 'requests the clients re-sent after a timeout'),
  client('client_pending_max', 'operations', 'max(client_pending)', 'operations in flight at a snapshot, most of the window'),
  ratioAt(['cluster'], 'client_latency_mean_us', 'µs', 'client_latency_us', 'client_ops_completed', 'mean client latency'),
];

const byName = new Map(FEATURES.map((f) => [f.name, f]));

/** The feature names at one level, in table order. */
export function featureNames(level: FeatureLevel): string[] {
  return FEATURES.filter((f) => f.levels.includes(level)).map((f) => f.name);
}

export function featureSpec(name: string): FeatureSpec | undefined {
  return byName.get(name);
}

/** The key columns at one level, in table order. */
export function keyColumns(level: FeatureLevel): KeyColumn[] {
  return KEY_COLUMNS.filter((k) => k.levels.includes(level));
}

/** Every column of a level's feature table (keys, features, then the version column), as the migration must create them. */
export function featureTableColumns(level: FeatureLevel): { name: string; type: string }[] {
  return [
    ...keyColumns(level).map(({ name, type }) => ({ name, type })),
    ...FEATURES.filter((f) => f.levels.includes(level)).map(({ name, type }) => ({ name, type })),
    { name: 'refreshed_at', type: "DateTime64(3, 'UTC')" },
  ];
}

export const FEATURE_TABLES: Readonly<Record<FeatureLevel, string>> = { node: 'features_node', cluster: 'features_cluster' };

/**
 * Bumped when the way the registry's definitions are turned into rows changes (the grid, the
 * zero fill, the 0/0 rule), since that changes the features without changing any definition.
 */
export const FEATURE_SPEC_VERSION = 1;

/**
 * SHA-256 (hex) of the canonical registry — every feature's name, unit, levels, source, kind,
 * stage, type and definition, the sources, the key columns — plus the window width. Equal
 * hashes mean equal feature columns computed the same way at the same width.
 */
export function featureSpecHash(windowMs: number): string {
  const canonical = {
    spec_version: FEATURE_SPEC_VERSION,
    window_ms: windowMs,
    sources: FEATURE_SOURCES,
    keys: KEY_COLUMNS.map(({ name, type, levels }) => ({ name, type, levels })),
    features: FEATURES.map(({ name, unit, levels, source, kind, stage, type, definition }) => ({ name, unit, levels, source, kind, stage, type, definition })),
  };
  return createHash('sha256').update(JSON.stringify(canonical)).digest('hex');
}

export class FeatureSpecError extends LatticeError {
  readonly expectedHash: string;
  readonly actualHash: string;

  constructor(expectedHash: string, actualHash: string, windowMs: number) {
    super('FEATURE_SPEC_MISMATCH', `feature spec mismatch: the model was trained on features with spec hash ${expectedHash}, but the features at window_ms ${windowMs} have spec hash ${actualHash}; retrain, or read the features it was trained on`);
    this.expectedHash = expectedHash;
    this.actualHash = actualHash;
  }
}

/** Throws FeatureSpecError (naming both hashes) unless the features at `windowMs` are the ones `expectedHash` was computed from. */
export function assertFeatureSpec(expectedHash: string, windowMs: number): void {
  const actual = featureSpecHash(windowMs);
  if (actual !== expectedHash) throw new FeatureSpecError(expectedHash, actual, windowMs);
}

/** The markdown table of docs/features.md listing every feature (a test checks the doc holds exactly this). */
export function featureDocTable(): string {
  const cell = (s: string) => s.replaceAll('|', '\\|');
  const rows = FEATURES.map((f) => `| \`${f.name}\` | ${f.unit} | ${f.levels.join(', ')} | ${f.kind} | ${f.type} | \`${cell(f.definition)}\` | ${cell(f.doc)} |`);
  return ['| feature | unit | level | kind | type | definition | meaning |', '|---|---|---|---|---|---|---|', ...rows].join('\n');
}

/** The markdown table of docs/features.md listing the key columns. */
export function keyDocTable(): string {
  const rows = KEY_COLUMNS.map((k) => `| \`${k.name}\` | ${k.type} | ${k.levels.join(', ')} | ${k.doc} |`);
  return ['| column | type | level | meaning |', '|---|---|---|---|', ...rows].join('\n');
}
