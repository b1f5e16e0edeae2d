/**
 * The contract every Store meets, run on the embedded store (chdb in the process) and on the
 * served one (`lattice store serve`'s front, reached through @clickhouse/client over HTTP) with
 * the same assertions: migrations, inserts (insertTransitions and the collector's
 * storeRecordWriter), FINAL counts, query parameters, features and Arrow. Each part runs on its
 * own database, since some of them read "all runs".
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tableFromIPC } from 'apache-arrow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storeRecordWriter } from '../../collector/store-writer.ts';
import { eventIdOf, PHASES, type TraceRecord } from '../../core/trace-schema.ts';
import { exportFeaturesArrow, exportLabelsArrow, readFeaturesArrow, readLabelsArrow } from '../../store/arrow.ts';
import type { Store } from '../../store/client.ts';
import { featureNames, featureTableColumns, FEATURE_TABLES } from '../../store/feature-registry.ts';
import { FEATURE_PHASES, featureColumns, readFeatureRows, refreshFeatures } from '../../store/features.ts';
import { labelNames, labelQuery, LABELS, readLabelRows, type LabelSpec } from '../../store/labels.ts';
import { appliedVersions, migrate, MIGRATIONS } from '../../store/migrations.ts';
import { countTransitions, eventIds, insertTransitions, queryRows } from '../../store/transitions.ts';
import { completeness, DEFAULT_FEATURE_SETTINGS, readFinalFeatures, type FeatureSettings } from '../../store/watermark.ts';
import { makeRecord, makeRecords } from '../support/records.ts';
import { makeSnapshot } from '../support/snapshots.ts';
import { columnsOf } from '../../core/record-fields.ts';
import { SNAPSHOT_FIELD_TABLE, snapshotJson, type MetricsSnapshot } from '../../core/metrics-snapshot.ts';
import { TRACE_FIELD_TABLE } from '../../core/trace-schema.ts';
import { countSnapshots, insertSnapshots, snapshotsOf } from '../../store/snapshots.ts';

export interface StoreUnderTest {
  readonly kind: 'embedded' | 'server';
  /** A store on `database` (a fresh database name per part). */
  open(database: string): Promise<Store>;
}

const T0 = 1_767_225_600_000_000; // a whole second
/** The window starting `offsetMs` after T0, as the store writes it in JSON. */
const W = (offsetMs: number) => new Date(T0 / 1_000 + offsetMs).toISOString().replace('T', ' ').replace('Z', '');
const OTHER_HASH = 'a'.repeat(64);

type Row = Record<string, unknown>;
const num = (row: Row | undefined, key: string) => Number(row?.[key]);
/** A zero, and not a NaN (ClickHouse writes NaN as null in JSON, which Number() would turn into 0). */
const expectZero = (row: Row | undefined, key: string, what = key) => {
  expect(row?.[key], what).not.toBeNull();
  expect(num(row, key), what).toBe(0);
};

export function storeContract(name: string, target: () => StoreUnderTest): void {
  describe(`store contract: ${name}`, () => {
    const withStore = (database: string) => {
      const holder: { store: Store } = { store: undefined as unknown as Store };
      beforeAll(async () => {
        holder.store = await target().open(database);
        expect(holder.store.kind).toBe(target().kind);
      });
      afterAll(async () => holder.store?.close());
      return holder;
    };

    describe('migrations, inserts and FINAL counts', () => {
      const s = withStore('contract_migrations');
      const schemaOf = async () => queryRows<{ name: string; type: string }>(s.store, `SELECT name, type FROM system.columns WHERE database = {db:String} ORDER BY table, position`, { db: s.store.database });

      it('applies every migration once, and applying twice equals applying once', async () => {
        const first = await migrate(s.store);
        expect(first.applied).toEqual(MIGRATIONS.map((m) => m.version));
        const schemaAfterFirst = await schemaOf();
        expect(schemaAfterFirst.length).toBeGreaterThan(20);
        const second = await migrate(s.store);
        expect(second.applied).toEqual([]);
        expect(second.alreadyApplied).toEqual(MIGRATIONS.map((m) => m.version));
        expect(await schemaOf()).toEqual(schemaAfterFirst);
        expect(await appliedVersions(s.store)).toEqual(MIGRATIONS.map((m) => m.version));
      });

      it("migration 5's feature tables have exactly the feature registry's columns, and the per-second tables are gone", async () => {
        await migrate(s.store);
        for (const level of ['node', 'cluster'] as const) {
          const columns = await queryRows<{ name: string; type: string }>(s.store, 'SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String} ORDER BY position', { db: s.store.database, t: FEATURE_TABLES[level] });
          expect(columns, level).toEqual(featureTableColumns(level));
        }
        const tables = await queryRows<{ name: string }>(s.store, 'SELECT name FROM system.tables WHERE database = {db:String}', { db: s.store.database });
        expect(tables.map((t) => t.name)).not.toContain('features_node_1s');
        expect(tables.map((t) => t.name)).not.toContain('features_cluster_1s');
      });

      it('applies only the migrations that are missing', async () => {
        const extra = { version: 9_999, name: 'test_extra', statements: ['CREATE TABLE IF NOT EXISTS {db}.extra_probe (x UInt8) ENGINE = MergeTree ORDER BY x'] };
        const report = await migrate(s.store, [...MIGRATIONS, extra]);
        expect(report.applied).toEqual([9_999]);
        expect((await migrate(s.store, [...MIGRATIONS, extra])).applied).toEqual([]);
      });

      it('holds every field of each record kind in a column of the type its field table names, in table order', async () => {
        await migrate(s.store);
        const columnsOfTable = async (table: string) =>
          (await queryRows<{ name: string; type: string }>(s.store, `SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String} AND default_kind NOT IN ('MATERIALIZED', 'ALIAS') AND name != 'ingested_at' ORDER BY position`, { db: s.store.database, t: table })).map((c) => [c.name, c.type]);
        expect(await columnsOfTable('transitions')).toEqual(columnsOf(TRACE_FIELD_TABLE).map(([n, t]) => [n, t]));
        expect(await columnsOfTable('metrics_snapshots')).toEqual(columnsOf(SNAPSHOT_FIELD_TABLE).map(([n, t]) => [n, t]));
      });

      it('stores metrics snapshots field for field, a redelivered one collapsing (FINAL)', async () => {
        const snapshots = [0, 1, 2].map((snap_seq) => makeSnapshot({ run_id: 'run-snap', node: 2, snap_seq, peers: [0, 1, 3], faults: snap_seq === 1 ? ['delay'] : [], faulty_nodes: snap_seq === 1 ? [3] : [], recovering: snap_seq === 2 }));
        await insertSnapshots(s.store, snapshots);
        await insertSnapshots(s.store, snapshots.slice(1), snapshots.slice(1).map(snapshotJson));
        expect(await countSnapshots(s.store, 'run-snap')).toBe(3);
        expect(await snapshotsOf(s.store, 'run-snap')).toEqual(snapshots);
      });

      it('stores records, and a redelivered batch adds no duplicates (FINAL)', async () => {
        const records = makeRecords('run-dup', 500);
        await insertTransitions(s.store, records);
        await insertTransitions(s.store, records.slice(100, 300));
        expect(await countTransitions(s.store, 'run-dup')).toBe(500);
        expect(new Set(await eventIds(s.store, 'run-dup'))).toEqual(new Set(records.map((r) => r.event_id)));
      });

      it('round-trips every field of a record', async () => {
        const [record] = makeRecords('run-roundtrip', 1);
        const withFaults = { ...record!, faults: ['crash', 'drop'] as const, faulty_nodes: [2], latency_us: null };
        await insertTransitions(s.store, [{ ...withFaults, faults: [...withFaults.faults] }]);
        const rows = await queryRows<Record<string, unknown>>(s.store, `SELECT * EXCEPT (ingested_at) FROM ${s.store.table('transitions')} FINAL WHERE run_id = 'run-roundtrip'`);
        expect(rows).toHaveLength(1);
        const row = rows[0]!;
        for (const [key, value] of Object.entries(withFaults)) {
          const stored = row[key];
          // UInt64/Int64 come back as strings in JSON; compare as numbers.
          if (typeof value === 'number') expect(Number(stored), key).toBe(value);
          else expect(stored, key).toEqual(value);
        }
      });

      it("the collector's writer stores the original NDJSON rows and canonical JSON alike, redelivery collapsing", async () => {
        const writer = storeRecordWriter(s.store);
        const records = makeRecords('run-writer', 300, 3);
        const rows = records.map((r) => JSON.stringify(r));
        // Blocks of several lines each, as decode.ts hands them over.
        await writer.write(records.slice(0, 200), [rows.slice(0, 120).join('\n'), rows.slice(120, 200).join('\n')]);
        await writer.write(records.slice(200));
        await writer.write(records.slice(50, 250), [rows.slice(50, 250).join('\n')]);
        expect(await countTransitions(s.store, 'run-writer')).toBe(300);
        expect(await eventIds(s.store, 'run-writer')).toEqual([...records].sort((a, b) => a.node - b.node || a.node_seq - b.node_seq).map((r) => r.event_id));
      });

      it('binds query parameters exactly: quotes, backslashes, tabs, newlines and non-ASCII in a run id', async () => {
        const runId = "run 'quoted' \\ back\\slash \t tab \n nl ünïcødé 🚀 {x:String}";
        const records = [0, 1, 2].map((nodeSeq) => makeRecord({ run_id: runId, event_id: eventIdOf(runId, 1, nodeSeq), node: 1, node_seq: nodeSeq }));
        await insertTransitions(s.store, records);
        expect(await countTransitions(s.store, runId)).toBe(3);
        expect(await eventIds(s.store, runId)).toEqual(records.map((r) => r.event_id));
        const [row] = await queryRows<{ same: number; ids: string[] }>(s.store, 'SELECT {a:String} = {b:String} AS same, {ids:Array(String)} AS ids', { a: runId, b: runId, ids: [runId, "it's", 'a\\b'] });
        expect(Number(row!.same)).toBe(1);
        expect(row!.ids).toEqual([runId, "it's", 'a\\b']);
      });
    });

    describe('upgrading a store from migration 3', () => {
      const s = withStore('contract_upgrade');
      it('applies migration 5 alone: the per-second tables go, the new ones come, the transitions stay', async () => {
        expect((await migrate(s.store, MIGRATIONS.filter((m) => m.version <= 3))).applied).toEqual([1, 2, 3]);
        await insertTransitions(s.store, makeRecords('run-upgrade', 8, 2));
        const report = await migrate(s.store);
        expect(report.applied).toEqual(MIGRATIONS.filter((m) => m.version > 3).map((m) => m.version));
        const tables = (await queryRows<{ name: string }>(s.store, 'SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name', { db: s.store.database })).map((t) => t.name);
        expect(tables).toEqual(expect.arrayContaining(['features_cluster', 'features_node', 'transitions']));
        expect(tables).not.toContain('features_node_1s');
        expect(await countTransitions(s.store, 'run-upgrade')).toBe(8);
        await refreshFeatures(s.store, 'run-upgrade');
        expect((await readFeatureRows(s.store, { runId: 'run-upgrade', level: 'node' })).length).toBeGreaterThan(0);
      });
    });

    describe('features (hand-computed traces, at 1 s and at 100 ms)', () => {
      const s = withStore('contract_features');
      /** A record at `offsetUs` after T0, with the node's clock `skewUs` off true time. */
      const at = (run: string, node: number, nodeSeq: number, offsetUs: number, skewUs: number, o: Partial<TraceRecord>): TraceRecord =>
        makeRecord({ run_id: run, node, node_seq: nodeSeq, ts_us: T0 + offsetUs, node_clock_us: T0 + offsetUs + skewUs, msgs_sent: 0, msgs_received: 0, retransmissions: 0, batch_size: 0, latency_us: null, ...o });
      // A hand-computed PBFT trace: two nodes, two 1 s windows (sixteen 100 ms windows).
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
      // Three nodes, a record every 20 ms each for 1 s; node 2 crashes after its record at 380 ms,
      // and from 400 ms on the others' records carry the crash label.
      const CRASH: TraceRecord[] = [0, 1, 2].flatMap((node) =>
        Array.from({ length: 50 }, (_, i) => i * 20_000)
          .filter((offset) => node !== 2 || offset <= 380_000)
          .map((offset, i) => at('feat-crash', node, i, offset, 0, { phase: i % 2 === 0 ? 'commit' : 'execute', batch_size: i % 2, msgs_sent: 2, msgs_received: 3, ...(offset >= 400_000 ? { faults: ['crash' as const], faulty_nodes: [2] } : {}) })),
      );
      const ids = (rows: Row[]) => rows.map((r) => [r.window_start, num(r, 'node')]);
      beforeAll(async () => {
        await migrate(s.store);
        await insertTransitions(s.store, [...PBFT, ...EPAXOS, ...CRASH]);
        // A redelivered batch: duplicates sit in the table until a merge; features must not see them.
        await insertTransitions(s.store, PBFT.slice(0, 5));
        for (const windowMs of [1_000, 100]) {
          await refreshFeatures(s.store, 'feat-pbft', { windowMs });
          await refreshFeatures(s.store, 'feat-epaxos', { windowMs });
        }
        await refreshFeatures(s.store, 'feat-crash', { windowMs: 100 });
      });

      it('has a column for every phase of every protocol, and no label among the feature columns', () => {
        const phases = new Set<string>([...PHASES.pbft, ...PHASES.epaxos]);
        expect(new Set(FEATURE_PHASES)).toEqual(phases);
        for (const p of phases) expect(featureColumns('node')).toContain(`phase_${p}`);
        for (const level of ['node', 'cluster'] as const) for (const label of labelNames(level)) expect(featureColumns(level)).not.toContain(label);
      });

      it('1 s, per node: a row for every node in every window; counts, sums, quantiles, ratios; the last window partial', async () => {
        const rows = await readFeatureRows<Row>(s.store, { runId: 'feat-pbft', level: 'node', windowMs: 1_000 });
        expect(ids(rows)).toEqual([[W(0), 0], [W(0), 1], [W(1_000), 0], [W(1_000), 1]]);
        expect(Object.keys(rows[0]!)).toEqual(featureColumns('node'));
        const [n0w0, n1w0, n0w1, n1w1] = rows;
        expect(rows.map((r) => num(r, 'partial'))).toEqual([0, 0, 1, 1]);
        expect(rows.map((r) => num(r, 'window_ms'))).toEqual([1_000, 1_000, 1_000, 1_000]);
        expect(num(n0w0, 'transitions')).toBe(4);
        expect(num(n0w0, 'msgs_sent')).toBe(6);
        expect(num(n0w0, 'msgs_received')).toBe(1);
        expect(num(n0w0, 'retransmissions')).toBe(1);
        expect(num(n0w0, 'phase_request')).toBe(1);
        expect(num(n0w0, 'phase_pre_prepare')).toBe(1);
        expect(num(n0w0, 'phase_execute')).toBe(2);
        expect(num(n0w0, 'phase_commit')).toBe(0);
        expect(num(n0w0, 'executed_ops')).toBe(5);
        expect(num(n0w0, 'requests_received')).toBe(1);
        expect(num(n0w0, 'commits_measured')).toBe(2);
        expect(num(n0w0, 'commit_latency_p50_us')).toBe(3_000);
        expect(num(n0w0, 'commit_latency_p99_us')).toBe(3_000);
        expect(num(n0w0, 'hash_mismatches')).toBe(0);
        expect(num(n0w0, 'clock_offset_mean_us')).toBe(100);
        expect(num(n0w0, 'clock_offset_max_abs_us')).toBe(100);
        // Normalised by load: 6 messages / 5 operations, 4 records / 5 operations, 1 re-sent of 6 sent...
        expect(num(n0w0, 'msgs_sent_per_op')).toBeCloseTo(1.2, 12);
        expect(num(n0w0, 'msgs_received_per_op')).toBeCloseTo(0.2, 12);
        expect(num(n0w0, 'transitions_per_op')).toBeCloseTo(0.8, 12);
        expect(num(n0w0, 'ops_per_request')).toBe(5);
        expect(num(n0w0, 'retransmissions_per_msg')).toBeCloseTo(1 / 6, 12);
        expect(num(n0w0, 'msgs_sent_per_transition')).toBe(1.5);
        expect(num(n0w0, 'msgs_received_per_transition')).toBe(0.25);
        expect(num(n0w0, 'phase_execute_share')).toBe(0.5);
        expect(num(n0w0, 'phase_request_share')).toBe(0.25);
        expect(num(n0w0, 'hash_mismatches_per_transition')).toBe(0);

        expect(num(n1w0, 'transitions')).toBe(2);
        expect(num(n1w0, 'hash_mismatches')).toBe(1);
        expect(num(n1w0, 'hash_mismatches_per_transition')).toBe(0.5);
        expect(num(n1w0, 'clock_offset_mean_us')).toBe(-300);
        expect(num(n1w0, 'clock_offset_max_abs_us')).toBe(300);
        expect(num(n1w0, 'commit_latency_p50_us')).toBe(2_000);
        expect(num(n1w0, 'msgs_sent_per_op')).toBe(1.5);

        expect(num(n0w1, 'view_changes')).toBe(1);
        expect(num(n0w1, 'new_views')).toBe(1);
        expect(num(n0w1, 'retransmissions')).toBe(2);
        expect(num(n0w1, 'commits_measured')).toBe(0);
        expect(num(n0w1, 'commit_latency_p50_us')).toBe(0);
        // The 0/0 rule, x/0 half: 6 messages while nothing executed stay visible as 6 per operation.
        expect(num(n0w1, 'executed_ops')).toBe(0);
        expect(num(n0w1, 'msgs_sent_per_op')).toBe(6);
        expect(num(n0w1, 'retransmissions_per_msg')).toBeCloseTo(2 / 6, 12);

        // Node 1 wrote nothing in the second window: a zero row, every ratio 0 (0/0 = 0, no NaN).
        expect(n1w1?.protocol).toBe('pbft');
        for (const f of featureNames('node')) expectZero(n1w1, f);
      });

      it('1 s, per cluster: the same aggregates over all nodes of a window', async () => {
        const rows = await readFeatureRows<Row>(s.store, { runId: 'feat-pbft', level: 'cluster', windowMs: 1_000 });
        expect(rows.map((r) => r.window_start)).toEqual([W(0), W(1_000)]);
        expect(Object.keys(rows[0]!)).toEqual(featureColumns('cluster'));
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
        expect(num(w0, 'msgs_sent_per_op')).toBeCloseTo(9 / 7, 12);
        expect(num(w0, 'partial')).toBe(0);
        expect(num(w1, 'nodes_reporting')).toBe(1);
        expect(num(w1, 'view_changes')).toBe(1);
        expect(num(w1, 'partial')).toBe(1);
      });

      it('100 ms: the same trace in sixteen windows, zero rows between the records, both widths side by side', async () => {
        const rows = await readFeatureRows<Row>(s.store, { runId: 'feat-pbft', level: 'node', windowMs: 100 });
        expect(rows).toHaveLength(16 * 2);
        expect(ids(rows).slice(0, 4)).toEqual([[W(0), 0], [W(0), 1], [W(100), 0], [W(100), 1]]);
        const get = (offsetMs: number, node: number) => rows.find((r) => r.window_start === W(offsetMs) && num(r, 'node') === node);
        // Node 0's first four records all fall in the first 100 ms: the same figures as its 1 s window.
        expect(num(get(0, 0), 'transitions')).toBe(4);
        expect(num(get(0, 0), 'executed_ops')).toBe(5);
        expect(num(get(0, 0), 'commit_latency_p50_us')).toBe(3_000);
        expect(num(get(0, 0), 'msgs_sent_per_op')).toBeCloseTo(1.2, 12);
        // Node 1's two records are 985 ms apart: windows 0 and 9.
        expect(num(get(0, 1), 'transitions')).toBe(1);
        expect(num(get(0, 1), 'hash_mismatches')).toBe(1);
        expect(num(get(0, 1), 'msgs_sent_per_op')).toBe(3);
        expect(num(get(900, 1), 'transitions')).toBe(1);
        expect(num(get(900, 1), 'executed_ops')).toBe(2);
        expect(num(get(900, 1), 'commit_latency_p50_us')).toBe(2_000);
        expect(num(get(1_000, 0), 'view_changes')).toBe(1);
        expect(num(get(1_500, 0), 'new_views')).toBe(1);
        for (const offset of [100, 200, 800, 1_100, 1_400]) for (const node of [0, 1]) for (const f of featureNames('node')) expectZero(get(offset, node), f, `${offset} ms, node ${node}, ${f}`);
        expect(rows.filter((r) => num(r, 'partial') === 1).map((r) => [r.window_start, num(r, 'node')])).toEqual([[W(1_500), 0], [W(1_500), 1]]);
        expect(rows.reduce((sum, r) => sum + num(r, 'transitions'), 0)).toBe(PBFT.length);

        const cluster = await readFeatureRows<Row>(s.store, { runId: 'feat-pbft', level: 'cluster', windowMs: 100 });
        expect(cluster.map((r) => r.window_start)).toEqual(Array.from({ length: 16 }, (_, i) => W(i * 100)));
        expect(cluster.map((r) => num(r, 'transitions'))).toEqual([5, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1]);
        expect(cluster.map((r) => num(r, 'nodes_reporting'))).toEqual([2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1]);
        // The 1 s rows are untouched by the 100 ms refresh.
        expect(await readFeatureRows<Row>(s.store, { runId: 'feat-pbft', level: 'node', windowMs: 1_000 })).toHaveLength(4);
      });

      it('the 0/0 rule: no NaN or infinity in any float feature of any stored row', async () => {
        for (const level of ['node', 'cluster'] as const) {
          const floats = featureTableColumns(level).filter((c) => c.type === 'Float64').map((c) => c.name);
          expect(floats.length).toBeGreaterThan(10);
          const [row] = await queryRows<{ rows: string; bad: string }>(s.store, `SELECT count() AS rows, countIf(${floats.map((f) => `NOT isFinite(${f})`).join(' OR ')}) AS bad FROM ${s.store.table(FEATURE_TABLES[level])}`);
          expect(Number(row?.rows), level).toBeGreaterThan(20);
          expect(Number(row?.bad), level).toBe(0);
        }
      });

      it('EPaxos: dependency-graph sizes, recoveries and commit latency from commits', async () => {
        const [row] = await readFeatureRows<Row>(s.store, { runId: 'feat-epaxos', level: 'node', windowMs: 1_000 });
        expect(num(row, 'deps_mean')).toBe(3);
        expect(num(row, 'deps_max')).toBe(4);
        expect(num(row, 'recoveries')).toBe(1);
        expect(num(row, 'commits_measured')).toBe(2);
        expect(num(row, 'commit_latency_p50_us')).toBe(1_500);
        expect(num(row, 'executed_ops')).toBe(1);
        expect(row?.protocol).toBe('epaxos');
      });

      it('a crashed node: zero rows in every window after its last record, fewer nodes reporting, labels from its peers', async () => {
        const rows = await readFeatureRows<Row>(s.store, { runId: 'feat-crash', level: 'node', windowMs: 100 });
        expect(rows).toHaveLength(10 * 3);
        const node2 = rows.filter((r) => num(r, 'node') === 2);
        expect(node2.map((r) => num(r, 'transitions'))).toEqual([5, 5, 5, 5, 0, 0, 0, 0, 0, 0]);
        for (const row of node2.slice(4)) for (const f of featureNames('node')) expectZero(row, f);
        expect(rows.filter((r) => num(r, 'node') === 0).map((r) => num(r, 'transitions'))).toEqual(Array(10).fill(5));
        const cluster = await readFeatureRows<Row>(s.store, { runId: 'feat-crash', level: 'cluster', windowMs: 100 });
        expect(cluster.map((r) => num(r, 'nodes_reporting'))).toEqual([3, 3, 3, 3, 2, 2, 2, 2, 2, 2]);
        expect(cluster.map((r) => num(r, 'partial'))).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);

        const labels = await readLabelRows<Row>(s.store, { runId: 'feat-crash', level: 'node', windowMs: 100 });
        expect(labels.map((r) => [r.window_start, num(r, 'node')])).toEqual(ids(rows));
        expect(labels.filter((r) => num(r, 'node') === 2).map((r) => num(r, 'node_faulty'))).toEqual([0, 0, 0, 0, 1, 1, 1, 1, 1, 1]);
        expect(labels.filter((r) => num(r, 'node') !== 2).every((r) => num(r, 'node_faulty') === 0)).toBe(true);
        expect(labels.filter((r) => num(r, 'node') === 2).map((r) => r.active_faults)).toEqual([[], [], [], [], ['crash'], ['crash'], ['crash'], ['crash'], ['crash'], ['crash']]);
      });

      it('labels, apart: per window and per node, on the features grid, a window without records unlabelled', async () => {
        const cluster = await readLabelRows<Row>(s.store, { runId: 'feat-pbft', level: 'cluster', windowMs: 1_000 });
        expect(cluster).toEqual([
          { run_id: 'feat-pbft', window_ms: 1_000, window_start: W(0), labelled: 1, active_faults: ['clock_skew'], fault_active: 1, faulty_nodes: [1] },
          { run_id: 'feat-pbft', window_ms: 1_000, window_start: W(1_000), labelled: 1, active_faults: ['crash'], fault_active: 1, faulty_nodes: [2] },
        ].map((r) => ({ ...r, window_ms: expect.anything(), labelled: expect.anything(), fault_active: expect.anything(), recovering: expect.anything() })));
        expect(cluster.map((r) => [num(r, 'window_ms'), num(r, 'labelled'), num(r, 'fault_active'), num(r, 'recovering')])).toEqual([[1_000, 1, 1, 0], [1_000, 1, 1, 0]]);
        const node = await readLabelRows<Row>(s.store, { runId: 'feat-pbft', level: 'node', windowMs: 1_000 });
        expect(Object.keys(node[0]!)).toEqual(['run_id', 'window_ms', 'window_start', 'node', ...labelNames('node')]);
        // Node 2 is labelled faulty in the second window but never reported or led: it has no row.
        expect(node.map((r) => [r.window_start, num(r, 'node'), num(r, 'node_faulty')])).toEqual([[W(0), 0, 0], [W(0), 1, 1], [W(1_000), 0, 0], [W(1_000), 1, 0]]);
        // The engine's types of the label columns are the ones LABELS declares (and docs/features.md lists).
        const { query, params } = labelQuery(s.store, { runId: 'feat-pbft', level: 'node', windowMs: 1_000 });
        const [types] = await queryRows<Row>(s.store, `SELECT ${LABELS.map((l) => `toTypeName(${l.name}) AS ${l.name}`).join(', ')} FROM (${query}) LIMIT 1`, params);
        expect(types).toEqual(Object.fromEntries(LABELS.map((l) => [l.name, l.type])));
        const fine = await readLabelRows<Row>(s.store, { runId: 'feat-pbft', level: 'cluster', windowMs: 100 });
        expect(fine).toHaveLength(16);
        expect(fine.map((r) => num(r, 'labelled'))).toEqual([1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1]);
        expect(fine.map((r) => num(r, 'fault_active'))).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]);
        expect(fine[9]?.active_faults).toEqual(['clock_skew']);
      });

      it('features from metrics snapshots: a snapshot counts in the window it ends, a silent node is zero-filled, clients make cluster features', async () => {
        const run = 'feat-snap';
        // Transitions for both nodes in the first window, node 0 only afterwards (node 1 crashed).
        await insertTransitions(s.store, [
          at(run, 0, 0, 10_000, 0, {}),
          at(run, 1, 0, 20_000, 0, {}),
          at(run, 0, 1, 150_000, 0, {}),
          at(run, 0, 2, 250_000, 0, {}),
        ]);
        const snapAt = (node: number, seq: number, o: Partial<MetricsSnapshot> = {}) =>
          makeSnapshot({ run_id: run, node, snap_seq: seq, ts_us: T0 + (seq + 1) * 100_000, peers: node === 0 ? [1, 2, 3] : [0, 2, 3], ...o });
        await insertSnapshots(s.store, [
          // Ends the first window (ts = T0 + 100 ms): counts there, not in the second.
          snapAt(0, 0, { rejected_bad_mac: 2, received_from: [5, 4, 4], votes_from: [2, 2, 2], vote_wait_us_sum: [2_000, 2_000, 20_000] }),
          snapAt(1, 0, { rejected_bad_mac: 1 }),
          snapAt(0, 1, { received_from: [0, 4, 4], rejected_duplicate: 0, backlog: 7 }),
          snapAt(0, 2, { received_from: [0, 4, 4], rejected_duplicate: 0 }),
          makeSnapshot({ run_id: run, source: 'client', node: 0, snap_seq: 0, ts_us: T0 + 100_000, peers: [], sent_to: [], received_from: [], quorum_last_peer: [], votes_from: [], vote_wait_us_sum: [], timer_names: [], timer_fired: [], quorums_completed: 0, quorum_wait_us_sum: 0, quorum_wait_us_max: 0, client_ops_completed: 4, client_latency_us_sum: 8_000, client_latency_us_max: 3_000, client_retries: 1 }),
        ]);
        await refreshFeatures(s.store, run, { windowMs: 100 });
        const node = await readFeatureRows<Row>(s.store, { runId: run, level: 'node', windowMs: 100 });
        const pick = (r: Row) => [num(r, 'node'), num(r, 'snapshots'), num(r, 'rejected_bad_mac'), num(r, 'rejected_total'), num(r, 'peers_silent'), num(r, 'backlog_max')];
        expect(node.map(pick)).toEqual([
          [0, 1, 2, 3, 0, 2],
          [1, 1, 1, 2, 0, 2],
          [0, 1, 0, 0, 1, 7],
          // Node 1 is silent: no records, no snapshots, every feature 0 (absence is evidence).
          [1, 0, 0, 0, 0, 0],
          [0, 1, 0, 0, 1, 2],
          [1, 0, 0, 0, 0, 0],
        ]);
        // Peer 3's votes took 10 ms each on average, the others' 1 ms: the slowest peer stands out.
        expect(num(node[0], 'slowest_peer_vote_wait_us')).toBe(10_000);
        expect(num(node[0], 'vote_wait_mean_us')).toBe(24_000 / 6);
        const cluster = await readFeatureRows<Row>(s.store, { runId: run, level: 'cluster', windowMs: 100 });
        expect(cluster.map((r) => [num(r, 'snapshots'), num(r, 'client_ops_completed'), num(r, 'client_latency_mean_us'), num(r, 'client_retries')])).toEqual([
          [2, 4, 2_000, 1],
          [1, 0, 0, 0],
          [1, 0, 0, 0],
        ]);
      });

      it('the recovering label: a window is recovering when a record in it is, apart from fault_active', async () => {
        await insertTransitions(s.store, [
          at('feat-recovering', 0, 0, 50_000, 0, { faults: ['crash'], faulty_nodes: [1] }),
          at('feat-recovering', 0, 1, 150_000, 0, { recovering: true }),
          at('feat-recovering', 0, 2, 250_000, 0, {}),
        ]);
        const rows = await readLabelRows<Row>(s.store, { runId: 'feat-recovering', level: 'cluster', windowMs: 100 });
        expect(rows.map((r) => [num(r, 'fault_active'), num(r, 'recovering')])).toEqual([[1, 0], [0, 1], [0, 0]]);
      });

      it('adding a label is one entry in LABELS (the array is extended and restored)', async () => {
        const registry = LABELS as LabelSpec[];
        registry.push({ name: 'retransmitting', type: 'UInt8', level: 'cluster', definition: 'toUInt8(max(retransmissions > 0))', doc: 'test only' });
        try {
          const rows = await readLabelRows<Row>(s.store, { runId: 'feat-pbft', level: 'node', windowMs: 1_000 });
          expect(rows.map((r) => num(r, 'retransmitting'))).toEqual([1, 1, 1, 1]);
          expect(Object.keys(rows[0]!).at(-1)).toBe('retransmitting');
        } finally {
          registry.pop();
        }
        expect(labelNames('node')).not.toContain('retransmitting');
      });

      it('the node set includes a node known only as a leader: zero rows for it', async () => {
        await insertTransitions(s.store, [at('feat-leader', 0, 0, 10_000, 0, { leader: 3 }), at('feat-leader', 0, 1, 120_000, 0, { leader: 3 })]);
        await refreshFeatures(s.store, 'feat-leader', { windowMs: 100 });
        const rows = await readFeatureRows<Row>(s.store, { runId: 'feat-leader', level: 'node', windowMs: 100 });
        expect(ids(rows)).toEqual([[W(0), 0], [W(0), 3], [W(100), 0], [W(100), 3]]);
        expect(rows.map((r) => num(r, 'transitions'))).toEqual([1, 0, 1, 0]);
      });

      it('refreshing again is idempotent, and a late record corrects its window', async () => {
        const before = await readFeatureRows<Row>(s.store, { runId: 'feat-pbft', level: 'node', windowMs: 1_000 });
        await refreshFeatures(s.store, 'feat-pbft', { windowMs: 1_000 });
        await insertTransitions(s.store, PBFT);
        await refreshFeatures(s.store, undefined, { windowMs: 1_000 });
        expect(await readFeatureRows<Row>(s.store, { runId: 'feat-pbft', level: 'node', windowMs: 1_000 })).toEqual(before);

        await insertTransitions(s.store, [at('feat-pbft', 1, 2, 500_000, -300, { phase: 'execute', batch_size: 4, latency_us: 4_000 })]);
        await refreshFeatures(s.store, 'feat-pbft', { windowMs: 1_000, sinceUs: T0 + 700_000 });
        const [, n1w0] = await readFeatureRows<Row>(s.store, { runId: 'feat-pbft', level: 'node', windowMs: 1_000 });
        expect(num(n1w0, 'transitions')).toBe(3);
        expect(num(n1w0, 'executed_ops')).toBe(6);
        const stored = await queryRows<{ n: string }>(s.store, `SELECT count() AS n FROM ${s.store.table('features_node')} FINAL WHERE run_id = 'feat-pbft' AND window_ms = 1000`);
        expect(Number(stored[0]?.n)).toBe(4);
      });

      it('a refresh since a later window also recomputes from the last stored one: its partial mark clears, the gap gets zero rows', async () => {
        await insertTransitions(s.store, [at('feat-partial', 0, 0, 10_000, 0, {}), at('feat-partial', 0, 1, 150_000, 0, {})]);
        await refreshFeatures(s.store, 'feat-partial', { windowMs: 100 });
        const first = await readFeatureRows<Row>(s.store, { runId: 'feat-partial', level: 'cluster', windowMs: 100 });
        expect(first.map((r) => [r.window_start, num(r, 'partial')])).toEqual([[W(0), 0], [W(100), 1]]);
        await insertTransitions(s.store, [at('feat-partial', 0, 2, 420_000, 0, {})]);
        await refreshFeatures(s.store, 'feat-partial', { windowMs: 100, sinceUs: T0 + 420_000 });
        const second = await readFeatureRows<Row>(s.store, { runId: 'feat-partial', level: 'cluster', windowMs: 100 });
        expect(second.map((r) => [r.window_start, num(r, 'partial'), num(r, 'transitions')])).toEqual([[W(0), 0, 1], [W(100), 0, 1], [W(200), 0, 0], [W(300), 0, 0], [W(400), 1, 1]]);
      });

      describe('the completeness watermark', () => {
        const T0_MS = T0 / 1_000;
        const settings = (o: Partial<FeatureSettings>): FeatureSettings => ({ ...DEFAULT_FEATURE_SETTINGS, window_ms: 100, ...o });

        it('a crashed node holds the watermark back until it is node_silence_ms behind the head, then not', async () => {
          const held = await completeness(s.store, 'feat-crash', { settings: settings({}) });
          expect(held.nodes).toEqual([
            { node: 0, last_ts_us: T0 + 980_000, silent: false },
            { node: 1, last_ts_us: T0 + 980_000, silent: false },
            { node: 2, last_ts_us: T0 + 380_000, silent: false },
          ]);
          expect(held.head_us).toBe(T0 + 980_000);
          // 380 ms - 250 ms lateness = 130 ms: only the window [0, 100) has ended before it.
          expect(held.watermark_us).toBe(T0 + 130_000);
          expect(held.final_through_window_start_ms).toBe(T0_MS);
          expect(held.ended).toBe(false);
          expect([held.first_window_start_ms, held.last_window_start_ms]).toEqual([T0_MS, T0_MS + 900]);

          const moved = await completeness(s.store, 'feat-crash', { settings: settings({ node_silence_ms: 300 }) });
          expect(moved.nodes.map((n) => n.silent)).toEqual([false, false, true]);
          // 980 ms - 250 ms = 730 ms: windows through [600, 700) are final.
          expect(moved.watermark_us).toBe(T0 + 730_000);
          expect(moved.final_through_window_start_ms).toBe(T0_MS + 600);
        });

        it('without lateness the partial last window is still not final; once the run is idle it is', async () => {
          const live = await completeness(s.store, 'feat-crash', { settings: settings({ node_silence_ms: 300, allowed_lateness_ms: 0 }) });
          expect(live.final_through_window_start_ms).toBe(T0_MS + 800);
          const ended = await completeness(s.store, 'feat-crash', { settings: settings({}), nowMs: Date.now() + 60_000 });
          expect(ended.ended).toBe(true);
          expect(ended.watermark_us).toBeNull();
          expect(ended.final_through_window_start_ms).toBe(T0_MS + 900);
        });

        it('a node known only as a leader is silent and blocks nothing; an unknown run has no final window', async () => {
          const state = await completeness(s.store, 'feat-leader', { settings: settings({ allowed_lateness_ms: 0 }) });
          expect(state.nodes).toEqual([
            { node: 0, last_ts_us: T0 + 120_000, silent: false },
            { node: 3, last_ts_us: null, silent: true },
          ]);
          expect(state.final_through_window_start_ms).toBe(T0_MS);
          const none = await completeness(s.store, 'no-such-run', { settings: settings({}) });
          expect(none).toMatchObject({ final_through_window_start_ms: null, head_us: null, nodes: [] });
        });

        it('readFinalFeatures returns the rows of the final windows only, after a cursor', async () => {
          const opts = { settings: settings({ node_silence_ms: 300 }) };
          const all = await readFinalFeatures<Row>(s.store, 'feat-crash', 'node', opts);
          expect(all.completeness.final_through_window_start_ms).toBe(T0_MS + 600);
          expect(all.rows).toHaveLength(7 * 3);
          const next = await readFinalFeatures<Row>(s.store, 'feat-crash', 'node', { ...opts, afterWindowStartMs: T0_MS + 300 });
          expect([...new Set(next.rows.map((r) => r.window_start))]).toEqual([W(400), W(500), W(600)]);
          expect((await readFinalFeatures<Row>(s.store, 'feat-crash', 'cluster', { ...opts, afterWindowStartMs: T0_MS + 600 })).rows).toEqual([]);
        });
      });
    });

    describe('features and labels as Arrow', () => {
      const s = withStore('contract_arrow');
      beforeAll(async () => {
        await migrate(s.store);
        // 3 nodes x 3 seconds, 10 records per node and second; node 2 reports a fault in second 1.
        const records: TraceRecord[] = [];
        for (let node = 0; node < 3; node++) {
          for (let i = 0; i < 30; i++) {
            const second = Math.floor(i / 10);
            const faulty = node === 2 && second === 1;
            records.push(makeRecord({ run_id: 'arrow-run', node, node_seq: i, phase: i % 2 === 0 ? 'commit' : 'execute', batch_size: 2, ts_us: T0 + second * 1_000_000 + (i % 10) * 1_000, node_clock_us: T0 + second * 1_000_000 + (i % 10) * 1_000, faults: faulty ? ['drop'] : [], faulty_nodes: faulty ? [2] : [] }));
          }
        }
        await insertTransitions(s.store, records);
        await insertTransitions(s.store, [makeRecord({ run_id: 'other-run' })]);
        await refreshFeatures(s.store, undefined, { windowMs: 1_000 });
      });

      it('reads node features of one run as an Arrow table with every feature column and no label', async () => {
        const table = await readFeaturesArrow(s.store, { runId: 'arrow-run', level: 'node', windowMs: 1_000 });
        expect(table.numRows).toBe(9);
        expect(table.schema.fields.map((f) => f.name)).toEqual(featureColumns('node'));
        expect([...table.getChild('node')!.toArray()].map(Number)).toEqual([0, 1, 2, 0, 1, 2, 0, 1, 2]);
        expect([...table.getChild('transitions')!.toArray()].map(Number)).toEqual(Array(9).fill(10));
        expect([...table.getChild('executed_ops')!.toArray()].map(Number)).toEqual(Array(9).fill(10));
        expect([...table.getChild('msgs_sent_per_op')!.toArray()].map(Number)).toEqual(Array(9).fill(3));
        expect(table.getChild('node_faulty')).toBeNull();
        expect(table.getChild('active_faults')).toBeNull();
      });

      it('reads the labels apart, on the same rows', async () => {
        const labels = await readLabelsArrow(s.store, { runId: 'arrow-run', level: 'node', windowMs: 1_000 });
        expect(labels.numRows).toBe(9);
        expect(labels.schema.fields.map((f) => f.name)).toEqual(['run_id', 'window_ms', 'window_start', 'node', ...labelNames('node')]);
        expect([...labels.getChild('node')!.toArray()].map(Number)).toEqual([0, 1, 2, 0, 1, 2, 0, 1, 2]);
        expect([...labels.getChild('node_faulty')!.toArray()].map(Number)).toEqual([0, 0, 0, 0, 0, 1, 0, 0, 0]);
        const faults = labels.getChild('active_faults')!;
        expect([3, 4, 5].map((i) => [...faults.get(i)!].map(String))).toEqual([['drop'], ['drop'], ['drop']]);
        expect(faults.get(0)!.length).toBe(0);
        const path = join(mkdtempSync(join(tmpdir(), 'lattice-arrow-')), 'labels.arrow');
        expect((await exportLabelsArrow(s.store, path, { runId: 'arrow-run', level: 'cluster', windowMs: 1_000 })).rows).toBe(3);
        expect([...tableFromIPC(readFileSync(path)).getChild('fault_active')!.toArray()].map(Number)).toEqual([0, 1, 0]);
      });

      it('reads cluster features of all runs, and exports an Arrow IPC file that reads back', async () => {
        const all = await readFeaturesArrow(s.store, { level: 'cluster', windowMs: 1_000 });
        expect(all.numRows).toBe(4);
        const path = join(mkdtempSync(join(tmpdir(), 'lattice-arrow-')), 'features.arrow');
        const written = await exportFeaturesArrow(s.store, path, { runId: 'arrow-run', level: 'cluster', windowMs: 1_000 });
        expect(written.rows).toBe(3);
        const back = tableFromIPC(readFileSync(path));
        expect(back.numRows).toBe(3);
        expect([...back.getChild('nodes_reporting')!.toArray()].map(Number)).toEqual([3, 3, 3]);
        expect([...back.getChild('transitions')!.toArray()].map(Number)).toEqual([30, 30, 30]);
      });

      it('an empty selection is an empty table, not an error', async () => {
        const table = await readFeaturesArrow(s.store, { runId: 'no-such-run', level: 'node' });
        expect(table.numRows).toBe(0);
        expect((await readLabelsArrow(s.store, { runId: 'no-such-run', level: 'node' })).numRows).toBe(0);
      });
    });
  });
}
