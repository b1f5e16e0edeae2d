import { eventIdOf, TRACE_SCHEMA_VERSION, type TraceRecord } from '../../core/trace-schema.ts';

const ZERO_HASH = '0'.repeat(64);

/** A valid record with sensible values; tests override what they exercise. */
export function makeRecord(overrides: Partial<TraceRecord> = {}): TraceRecord {
  const run_id = overrides.run_id ?? 'run-test';
  const node = overrides.node ?? 0;
  const node_seq = overrides.node_seq ?? 0;
  return {
    schema_version: TRACE_SCHEMA_VERSION,
    run_id,
    event_id: eventIdOf(run_id, node, node_seq),
    node,
    node_seq,
    protocol: 'pbft',
    phase: 'commit',
    view: 0,
    seq: 1,
    leader: 0,
    ts_us: 1_767_225_600_000_000 + node_seq * 1_000,
    node_clock_us: 1_767_225_600_000_000 + node_seq * 1_000,
    msgs_sent: 3,
    msgs_received: 1,
    retransmissions: 0,
    batch_size: 1,
    deps_count: 0,
    latency_us: 1200,
    byzantine_altered: 0,
    state_hash: ZERO_HASH,
    shadow_hash: ZERO_HASH,
    faults: [],
    faulty_nodes: [],
    recovering: false,
    ...overrides,
  };
}

/** `count` records spread over `nodes` nodes, node_seq increasing per node. */
export function makeRecords(runId: string, count: number, nodes = 4): TraceRecord[] {
  return Array.from({ length: count }, (_, i) => makeRecord({ run_id: runId, node: i % nodes, node_seq: Math.floor(i / nodes) }));
}
