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
import { exportFeaturesArrow, readFeaturesArrow } from '../../store/arrow.ts';
import type { Store } from '../../store/client.ts';
import { FEATURE_PHASES, featureColumns, readFeatureRows, refreshFeatures } from '../../store/features.ts';
import { appliedVersions, migrate, MIGRATIONS } from '../../store/migrations.ts';
import { countTransitions, eventIds, insertTransitions, queryRows } from '../../store/transitions.ts';
import { makeRecord, makeRecords } from '../support/records.ts';
import { makeSnapshot } from '../support/snapshots.ts';
import { columnsOf } from '../../core/record-fields.ts';
import { SNAPSHOT_FIELD_TABLE, snapshotJson } from '../../core/metrics-snapshot.ts';
import { TRACE_FIELD_TABLE } from '../../core/trace-schema.ts';
import { countSnapshots, insertSnapshots, snapshotsOf } from '../../store/snapshots.ts';

export interface StoreUnderTest {
  readonly kind: 'embedded' | 'server';
  /** A store on `database` (a fresh database name per part). */
  open(database: string): Promise<Store>;
}

const T0 = 1_767_225_600_000_000; // a whole second
const W0 = '2026-01-01 00:00:00';
const W1 = '2026-01-01 00:00:01';
const OTHER_HASH = 'a'.repeat(64);

type Row = Record<string, unknown>;
const num = (row: Row | undefined, key: string) => Number(row?.[key]);

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

    describe('features (hand-computed traces)', () => {
      const s = withStore('contract_features');
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
      beforeAll(async () => {
        await migrate(s.store);
        await insertTransitions(s.store, [...PBFT, ...EPAXOS]);
        // A redelivered batch: duplicates sit in the table until a merge; features must not see them.
        await insertTransitions(s.store, PBFT.slice(0, 5));
        await refreshFeatures(s.store, 'feat-pbft');
        await refreshFeatures(s.store, 'feat-epaxos');
      });

      it('has a column for every phase of every protocol', () => {
        const phases = new Set<string>([...PHASES.pbft, ...PHASES.epaxos]);
        expect(new Set(FEATURE_PHASES)).toEqual(phases);
        for (const p of phases) expect(featureColumns('node')).toContain(`phase_${p}`);
      });

      it('per node: counts, sums, latency quantiles, hash mismatches, clock offset and fault labels', async () => {
        const rows = await readFeatureRows<Row>(s.store, { runId: 'feat-pbft', level: 'node' });
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
        const rows = await readFeatureRows<Row>(s.store, { runId: 'feat-pbft', level: 'cluster' });
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
        const [row] = await readFeatureRows<Row>(s.store, { runId: 'feat-epaxos', level: 'node' });
        expect(num(row, 'deps_mean')).toBe(3);
        expect(num(row, 'deps_max')).toBe(4);
        expect(num(row, 'recoveries')).toBe(1);
        expect(num(row, 'commits_measured')).toBe(2);
        expect(num(row, 'commit_latency_p50_us')).toBe(1_500);
        expect(num(row, 'executed_ops')).toBe(1);
        expect(row?.protocol).toBe('epaxos');
      });

      it('refreshing again is idempotent, and a late record corrects its window', async () => {
        const before = await readFeatureRows<Row>(s.store, { runId: 'feat-pbft', level: 'node' });
        await refreshFeatures(s.store, 'feat-pbft');
        await insertTransitions(s.store, PBFT);
        await refreshFeatures(s.store);
        expect(await readFeatureRows<Row>(s.store, { runId: 'feat-pbft', level: 'node' })).toEqual(before);

        await insertTransitions(s.store, [at('feat-pbft', 1, 2, 500_000, -300, { phase: 'execute', batch_size: 4, latency_us: 4_000 })]);
        await refreshFeatures(s.store, 'feat-pbft', { sinceUs: T0 + 700_000 });
        const [, n1w0] = await readFeatureRows<Row>(s.store, { runId: 'feat-pbft', level: 'node' });
        expect(num(n1w0, 'transitions')).toBe(3);
        expect(num(n1w0, 'executed_ops')).toBe(6);
        const stored = await queryRows<{ n: string }>(s.store, `SELECT count() AS n FROM ${s.store.table('features_node_1s')} FINAL WHERE run_id = 'feat-pbft'`);
        expect(Number(stored[0]?.n)).toBe(3);
      });
    });

    describe('features as Arrow', () => {
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
        await refreshFeatures(s.store);
      });

      it('reads node features of one run as an Arrow table with every feature column', async () => {
        const table = await readFeaturesArrow(s.store, { runId: 'arrow-run', level: 'node' });
        expect(table.numRows).toBe(9);
        expect(table.schema.fields.map((f) => f.name)).toEqual(featureColumns('node'));
        expect([...table.getChild('node')!.toArray()].map(Number)).toEqual([0, 1, 2, 0, 1, 2, 0, 1, 2]);
        expect([...table.getChild('transitions')!.toArray()].map(Number)).toEqual(Array(9).fill(10));
        expect([...table.getChild('executed_ops')!.toArray()].map(Number)).toEqual(Array(9).fill(10));
        expect([...table.getChild('node_faulty')!.toArray()].map(Number)).toEqual([0, 0, 0, 0, 0, 1, 0, 0, 0]);
        const faults = table.getChild('active_faults')!;
        expect([...faults.get(5)!].map(String)).toEqual(['drop']);
        expect(faults.get(0)!.length).toBe(0);
      });

      it('reads cluster features of all runs, and exports an Arrow IPC file that reads back', async () => {
        const all = await readFeaturesArrow(s.store, { level: 'cluster' });
        expect(all.numRows).toBe(4);
        const path = join(mkdtempSync(join(tmpdir(), 'lattice-arrow-')), 'features.arrow');
        const written = await exportFeaturesArrow(s.store, path, { runId: 'arrow-run', level: 'cluster' });
        expect(written.rows).toBe(3);
        const back = tableFromIPC(readFileSync(path));
        expect(back.numRows).toBe(3);
        expect([...back.getChild('nodes_reporting')!.toArray()].map(Number)).toEqual([3, 3, 3]);
        expect([...back.getChild('transitions')!.toArray()].map(Number)).toEqual([30, 30, 30]);
      });

      it('an empty selection is an empty table, not an error', async () => {
        const table = await readFeaturesArrow(s.store, { runId: 'no-such-run', level: 'node' });
        expect(table.numRows).toBe(0);
      });
    });
  });
}
