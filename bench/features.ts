/**
 * Feature benchmark: how long refreshFeatures takes for one run at 100 ms and at 1 s windows
 * (a full refresh, and the collector's incremental one over the newest second), the watermark,
 * and reading features and labels as Arrow — next to the floor every full refresh pays, reading
 * the run's `transitions FINAL` once (measured in the same run on the same rows).
 *
 * The run is synthetic: `nodes` nodes at a saturating PBFT-like rate over `seconds` seconds,
 * one of them crashing halfway (its windows are zero-filled from then on).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../core/config.ts';
import { eventIdOf, PHASES, TRACE_SCHEMA_VERSION, type TraceRecord } from '../core/trace-schema.ts';
import { readFeaturesArrow, readLabelsArrow } from '../store/arrow.ts';
import { openStore } from '../store/client.ts';
import { refreshFeatures } from '../store/features.ts';
import { migrate } from '../store/migrations.ts';
import { insertTransitions, queryRows } from '../store/transitions.ts';
import { completeness, DEFAULT_FEATURE_SETTINGS } from '../store/watermark.ts';

export interface FeatureBenchOptions {
  readonly nodes?: number;
  readonly seconds?: number;
  /** Records per node and second. */
  readonly ratePerNode?: number;
}

const T0 = 1_767_225_600_000_000;
const HASH = '0'.repeat(64);

function records(runId: string, nodes: number, seconds: number, rate: number): TraceRecord[] {
  const out: TraceRecord[] = [];
  const phases = PHASES.pbft;
  const stepUs = Math.floor(1_000_000 / rate);
  for (let node = 0; node < nodes; node++) {
    const lastUs = node === nodes - 1 ? (seconds * 1_000_000) / 2 : seconds * 1_000_000;
    for (let i = 0, t = node * 7; t < lastUs; i++, t += stepUs) {
      const crashed = t >= (seconds * 1_000_000) / 2;
      out.push({
        schema_version: TRACE_SCHEMA_VERSION, run_id: runId, event_id: eventIdOf(runId, node, i), node, node_seq: i, protocol: 'pbft',
        phase: phases[i % 6]!, view: 0, seq: i, leader: 0, ts_us: T0 + t, node_clock_us: T0 + t, msgs_sent: 3, msgs_received: 3, retransmissions: 0,
        batch_size: i % 6 === 4 ? 4 : 0, deps_count: 0, latency_us: i % 6 === 4 ? 900 + (i % 50) : null, byzantine_altered: 0, state_hash: HASH, shadow_hash: HASH,
        faults: crashed ? ['crash'] : [], faulty_nodes: crashed ? [nodes - 1] : [], recovering: false,
      });
    }
  }
  return out;
}

async function timed<T>(f: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await f();
  return { ms: Math.round(performance.now() - started), value };
}

export async function benchFeatures(options: FeatureBenchOptions = {}): Promise<Record<string, number>> {
  const nodes = options.nodes ?? 4;
  const seconds = options.seconds ?? 30;
  const rate = options.ratePerNode ?? 4_000;
  const dir = mkdtempSync(join(tmpdir(), 'lattice-bench-features-'));
  const store = await openStore(loadConfig({ overrides: { store: { data_dir: dir, database: 'bench_features' } } }).store);
  try {
    await migrate(store);
    const runId = 'bench-features';
    const rows = records(runId, nodes, seconds, rate);
    for (let i = 0; i < rows.length; i += 50_000) await insertTransitions(store, rows.slice(i, i + 50_000));
    const floor = await timed(() => queryRows(store, `SELECT count(), sum(msgs_sent) FROM ${store.table('transitions')} FINAL WHERE run_id = {r:String}`, { r: runId }));
    const full100 = await timed(() => refreshFeatures(store, runId, { windowMs: 100 }));
    const full1000 = await timed(() => refreshFeatures(store, runId, { windowMs: 1_000 }));
    const sinceUs = T0 + (seconds - 1) * 1_000_000;
    const incremental100 = await timed(() => refreshFeatures(store, runId, { windowMs: 100, sinceUs }));
    const watermark = await timed(() => completeness(store, runId, { settings: { ...DEFAULT_FEATURE_SETTINGS, window_ms: 100 } }));
    const features = await timed(() => readFeaturesArrow(store, { runId, level: 'node', windowMs: 100 }));
    const labels = await timed(() => readLabelsArrow(store, { runId, level: 'node', windowMs: 100 }));
    return {
      features_records: rows.length,
      features_nodes: nodes,
      features_run_seconds: seconds,
      features_transitions_final_read_ms: floor.ms,
      features_refresh_full_100ms_ms: full100.ms,
      features_refresh_full_1000ms_ms: full1000.ms,
      features_refresh_last_second_100ms_ms: incremental100.ms,
      features_completeness_ms: watermark.ms,
      features_read_arrow_100ms_ms: features.ms,
      features_read_arrow_rows: features.value.numRows,
      labels_read_arrow_100ms_ms: labels.ms,
    };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
