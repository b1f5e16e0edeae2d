import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PHASES, type TraceRecord } from '../../core/trace-schema.ts';
import type { Store } from '../../store/client.ts';
import { FEATURE_PHASES, featureColumns, readFeatureRows, refreshFeatures } from '../../store/features.ts';
import { migrate } from '../../store/migrations.ts';
import { insertTransitions, queryRows } from '../../store/transitions.ts';
import { makeRecord } from '../support/records.ts';
import { openTestStore } from '../support/store.ts';

const T0 = 1_767_225_600_000_000; // a whole second
const W0 = '2026-01-01 00:00:00';
const W1 = '2026-01-01 00:00:01';
const OTHER_HASH = 'a'.repeat(64);

/** A record at `offsetUs` after T0, with the node's clock `skewUs` off true time. */
const at = (run: string, node: number, nodeSeq: number, offsetUs: number, skewUs: number, o: Partial<TraceRecord>): TraceRecord =>
  makeRecord({ run_id: run, node, node_seq: nodeSeq, ts_us: T0 + offsetUs, node_clock_us: T0 + offsetUs + skewUs, msgs_sent: 0, msgs_received: 0, retransmissions: 0, batch_size: 0, latency_us: null, ...o });

// A hand-computed PBFT trace: two nodes, two 1 s windows.
const PBFT: TraceRecord[] = [
  at('feat-pbft', 0, 0, 10_000, 100, { phase: 'request', msgs_sent: 3 }),
  at('feat-pbft', 0, 1, 20_000, 100, { phase: 'pre_prepare', msgs_sent: 3, msgs_received: 1, retransmissions: 1 }),
  at('feat-pbft', 0, 2, 30_000, 100, { phase: 'execute', batch_size: 2, latency_us: 1_000 }),
  at('feat-pbft', 0, 3, 40_000, 100, { phase: 'execute', batch_size: 3, latency_us: 3_000 }),
  at('feat-pbft', 1, 0, 15_000, -300, { phase: 'prepare', msgs_sent: 3, msgs_received: 1, shadow_hash: OTHER_HASH }),
  at('feat-pbft', 1, 1, 999_999, -300, { phase: 'execute', batch_size: 2, latency_us: 2_000, faults: ['clock_skew'], faulty_nodes: [1] }),
  at('feat-pbft', 0, 4, 1_000_000, 0, { phase: 'view_change', msgs_sent: 3, retransmissions: 2, faults: ['crash'], faulty_nodes: [2] }),
  at('feat-pbft', 0, 5, 1_500_000, 0, { phase: 'new_view', msgs_sent: 3, msgs_received: 2 }),
];

// A hand-computed EPaxos trace: one node, one window.
const EPAXOS: TraceRecord[] = [
  at('feat-epaxos', 0, 0, 1_000, 0, { protocol: 'epaxos', phase: 'commit', deps_count: 2, latency_us: 500 }),
  at('feat-epaxos', 0, 1, 2_000, 0, { protocol: 'epaxos', phase: 'commit', deps_count: 4, latency_us: 1_500 }),
  at('feat-epaxos', 0, 2, 3_000, 0, { protocol: 'epaxos', phase: 'prepare', deps_count: 7 }),
  at('feat-epaxos', 0, 3, 4_000, 0, { protocol: 'epaxos', phase: 'execute', batch_size: 1, latency_us: 2_000 }),
];

type Row = Record<string, unknown>;
const num = (row: Row | undefined, key: string) => Number(row?.[key]);

describe('features (embedded ClickHouse, hand-computed traces)', () => {
  let store: Store;
  beforeAll(async () => {
    store = await openTestStore();
    await migrate(store);
    await insertTransitions(store, [...PBFT, ...EPAXOS]);
    // A redelivered batch: duplicates sit in the table until a merge; features must not see them.
    await insertTransitions(store, PBFT.slice(0, 5));
    await refreshFeatures(store, 'feat-pbft');
    await refreshFeatures(store, 'feat-epaxos');
  });
  afterAll(async () => store?.close());

  it('has a column for every phase of every protocol', () => {
    const phases = new Set<string>([...PHASES.pbft, ...PHASES.epaxos]);
    expect(new Set(FEATURE_PHASES)).toEqual(phases);
    for (const p of phases) expect(featureColumns('node')).toContain(`phase_${p}`);
  });

  it('per node: counts, sums, latency quantiles, hash mismatches, clock offset and fault labels', async () => {
    const rows = await readFeatureRows<Row>(store, { runId: 'feat-pbft', level: 'node' });
    expect(rows.map((r) => [r.window_start, r.node])).toEqual([[W0, 0], [W0, 1], [W1, 0]]);
    const [n0w0, n1w0, n0w1] = rows;
    expect(num(n0w0, 'transitions')).toBe(4);
    expect(num(n0w0, 'msgs_sent')).toBe(6);
    expect(num(n0w0, 'msgs_received')).toBe(1);
    expect(num(n0w0, 'retransmissions')).toBe(1);
    expect(num(n0w0, 'phase_request')).toBe(1);
    expect(num(n0w0, 'phase_pre_prepare')).toBe(1);
    expect(num(n0w0, 'phase_execute')).toBe(2);
    expect(num(n0w0, 'phase_commit')).toBe(0);
    expect(num(n0w0, 'executed_ops')).toBe(5);
    expect(num(n0w0, 'commits_measured')).toBe(2);
    // quantileExact: the sample at 0-based position floor(q * n) of the sorted samples.
    expect(num(n0w0, 'commit_latency_p50_us')).toBe(3_000);
    expect(num(n0w0, 'commit_latency_p99_us')).toBe(3_000);
    expect(num(n0w0, 'hash_mismatches')).toBe(0);
    expect(num(n0w0, 'clock_offset_mean_us')).toBe(100);
    expect(num(n0w0, 'clock_offset_max_abs_us')).toBe(100);
    expect(n0w0?.active_faults).toEqual([]);
    expect(num(n0w0, 'fault_active')).toBe(0);

    expect(num(n1w0, 'transitions')).toBe(2);
    expect(num(n1w0, 'hash_mismatches')).toBe(1);
    expect(num(n1w0, 'clock_offset_mean_us')).toBe(-300);
    expect(num(n1w0, 'clock_offset_max_abs_us')).toBe(300);
    expect(num(n1w0, 'commit_latency_p50_us')).toBe(2_000);
    expect(n1w0?.active_faults).toEqual(['clock_skew']);
    expect(num(n1w0, 'fault_active')).toBe(1);
    expect(num(n1w0, 'node_faulty')).toBe(1);

    expect(num(n0w1, 'view_changes')).toBe(1);
    expect(num(n0w1, 'new_views')).toBe(1);
    expect(num(n0w1, 'retransmissions')).toBe(2);
    expect(num(n0w1, 'commits_measured')).toBe(0);
    expect(num(n0w1, 'commit_latency_p50_us')).toBe(0);
    expect(n0w1?.active_faults).toEqual(['crash']);
    expect(num(n0w1, 'node_faulty')).toBe(0);
  });

  it('per cluster: the same aggregates over all nodes of a window', async () => {
    const rows = await readFeatureRows<Row>(store, { runId: 'feat-pbft', level: 'cluster' });
    expect(rows.map((r) => r.window_start)).toEqual([W0, W1]);
    const [w0, w1] = rows;
    expect(num(w0, 'nodes_reporting')).toBe(2);
    expect(num(w0, 'transitions')).toBe(6);
    expect(num(w0, 'msgs_sent')).toBe(9);
    expect(num(w0, 'executed_ops')).toBe(7);
    expect(num(w0, 'commits_measured')).toBe(3);
    expect(num(w0, 'commit_latency_p50_us')).toBe(2_000);
    expect(num(w0, 'commit_latency_p90_us')).toBe(3_000);
    expect(num(w0, 'hash_mismatches')).toBe(1);
    expect(num(w0, 'clock_offset_mean_us')).toBeCloseTo((4 * 100 - 2 * 300) / 6, 9);
    expect(num(w0, 'clock_offset_max_abs_us')).toBe(300);
    expect(w0?.faulty_nodes).toEqual([1]);
    expect(num(w1, 'nodes_reporting')).toBe(1);
    expect(num(w1, 'view_changes')).toBe(1);
    expect(w1?.active_faults).toEqual(['crash']);
    expect(w1?.faulty_nodes).toEqual([2]);
  });

  it('EPaxos: dependency-graph sizes, recoveries and commit latency from commits', async () => {
    const [row] = await readFeatureRows<Row>(store, { runId: 'feat-epaxos', level: 'node' });
    expect(num(row, 'deps_mean')).toBe(3);
    expect(num(row, 'deps_max')).toBe(4);
    expect(num(row, 'recoveries')).toBe(1);
    expect(num(row, 'commits_measured')).toBe(2);
    expect(num(row, 'commit_latency_p50_us')).toBe(1_500);
    expect(num(row, 'executed_ops')).toBe(1);
    expect(row?.protocol).toBe('epaxos');
  });

  it('refreshing again is idempotent, and a late record corrects its window', async () => {
    const before = await readFeatureRows<Row>(store, { runId: 'feat-pbft', level: 'node' });
    await refreshFeatures(store, 'feat-pbft');
    await insertTransitions(store, PBFT);
    await refreshFeatures(store);
    expect(await readFeatureRows<Row>(store, { runId: 'feat-pbft', level: 'node' })).toEqual(before);

    await insertTransitions(store, [at('feat-pbft', 1, 2, 500_000, -300, { phase: 'execute', batch_size: 4, latency_us: 4_000 })]);
    await refreshFeatures(store, 'feat-pbft', { sinceUs: T0 + 700_000 });
    const [, n1w0] = await readFeatureRows<Row>(store, { runId: 'feat-pbft', level: 'node' });
    expect(num(n1w0, 'transitions')).toBe(3);
    expect(num(n1w0, 'executed_ops')).toBe(6);
    const stored = await queryRows<{ n: string }>(store, `SELECT count() AS n FROM ${store.table('features_node_1s')} FINAL WHERE run_id = 'feat-pbft'`);
    expect(Number(stored[0]?.n)).toBe(3);
  });
});
