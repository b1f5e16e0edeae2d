/**
 * The demo, end to end on whatever the configuration names (embedded by default): a seeded chaos
 * run of the cluster, shipped through the transport, collected into the store, and accounted for:
 * every emitted record is either stored or dead-lettered.
 */
import { countSnapshots } from '../store/snapshots.ts';
import type { LatticeConfig } from '../core/config.ts';
import type { Logger } from '../core/logging.ts';
import type { Protocol } from '../core/trace-schema.ts';
import { loadScenarioFile } from '../cluster/chaos/scenario.ts';
import { protocolByName, scenarioPath } from '../cluster/protocols.ts';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { exportFeaturesArrow, exportLabelsArrow } from '../store/arrow.ts';
import { readFeatureRows } from '../store/features.ts';
import { readLabelRows } from '../store/labels.ts';
import { queryRows } from '../store/transitions.ts';
import { Pipeline } from './pipeline.ts';

export interface DemoOptions {
  readonly protocol: Protocol;
  readonly seed: number;
  /** A scenario file; default: the protocol's built-in demo scenario. */
  readonly scenario?: string;
  readonly onProgress?: (stage: string) => void;
  /** Where the features' Arrow file goes (default .lattice/exports). */
  readonly exportDir?: string;
}

export interface DemoSummary {
  readonly run_id: string;
  readonly protocol: Protocol;
  readonly scenario: string;
  readonly seed: number;
  readonly events_emitted: number;
  readonly events_stored: number;
  readonly events_dead_lettered: number;
  readonly snapshots_emitted: number;
  readonly snapshots_stored: number;
  readonly trace_hash: string;
  readonly ops_submitted: number;
  readonly ops_completed: number;
  readonly safety_violations: number;
  readonly shadow_mismatches: number;
  readonly faults_injected: string[];
  readonly transport: string;
  readonly store: { kind: string; location: string; database: string };
  readonly replay: string;
  readonly phases: Record<string, number>;
  /** Width of the feature windows (features.window_ms). */
  readonly window_ms: number;
  /** Cluster features of the run per window (a few columns, for the printed table), each with its window's fault labels. */
  readonly features: FeatureWindow[];
  /** The run's per-node features as an Arrow IPC file (pyarrow, pandas, polars, DuckDB read it). */
  readonly features_arrow: string;
  /** The run's per-node labels as an Arrow IPC file, apart from the features, on the same rows. */
  readonly labels_arrow: string;
}

export interface FeatureWindow {
  readonly window_start: string;
  /** The run's last window, covering less than window_ms of it. */
  readonly partial: boolean;
  readonly nodes_reporting: number;
  readonly transitions: number;
  readonly msgs_sent: number;
  readonly view_changes: number;
  readonly recoveries: number;
  readonly commit_latency_p99_us: number;
  readonly hash_mismatches: number;
  /** Replica metrics snapshots in the window (one per live replica at the default widths). */
  readonly snapshots: number;
  readonly rejected_total: number;
  /** Ground truth of the window, from the label reader (not a feature). */
  readonly active_faults: string[];
  readonly recovering: boolean;
  /** Some record fell in the window, so its labels are known (a window without records has none). */
  readonly labelled: boolean;
}

export async function runDemo(config: LatticeConfig, logger: Logger, options: DemoOptions): Promise<DemoSummary> {
  const progress = options.onProgress ?? (() => undefined);
  const protocol = protocolByName(options.protocol);
  const scenario = loadScenarioFile(options.scenario ?? scenarioPath(`demo-${options.protocol}`));

  progress('opening the store and the transport');
  const pipeline = await Pipeline.open(config, logger);
  try {
    progress(`running ${protocol.name} under scenario "${scenario.name}" (seed ${options.seed}) and collecting its trace`);
    const { result, stored, deadLettered } = await pipeline.ingestRun(protocol, scenario, options.seed);
    const { store } = pipeline;
    const phases = await queryRows<{ phase: string; n: string }>(store, `SELECT phase, count() AS n FROM ${store.table('transitions')} FINAL WHERE run_id = {run:String} GROUP BY phase ORDER BY phase`, { run: result.runId });
    const windowMs = config.features.window_ms;
    const windows = await readFeatureRows<Record<string, unknown>>(store, { runId: result.runId, level: 'cluster', windowMs });
    const labels = await readLabelRows<{ window_start: string; active_faults: string[]; labelled: number | string; recovering: number | string }>(store, { runId: result.runId, level: 'cluster', windowMs });
    const labelsAt = new Map(labels.map((l) => [l.window_start, l]));
    const exportDir = resolve(options.exportDir ?? '.lattice/exports');
    mkdirSync(exportDir, { recursive: true });
    const arrowPath = join(exportDir, `${result.runId}-features-node-${windowMs}ms.arrow`);
    const labelsPath = join(exportDir, `${result.runId}-labels-node-${windowMs}ms.arrow`);
    await exportFeaturesArrow(store, arrowPath, { runId: result.runId, level: 'node', windowMs });
    await exportLabelsArrow(store, labelsPath, { runId: result.runId, level: 'node', windowMs });
    return {
      run_id: result.runId,
      protocol: protocol.name,
      scenario: scenario.name,
      seed: options.seed,
      events_emitted: result.records,
      events_stored: stored,
      events_dead_lettered: deadLettered,
      snapshots_emitted: result.snapshots,
      snapshots_stored: await countSnapshots(store, result.runId),
      trace_hash: result.traceHash,
      ops_submitted: result.submittedOps,
      ops_completed: result.completedOps,
      safety_violations: result.safetyViolations.length,
      shadow_mismatches: result.shadowMismatches.length,
      faults_injected: [...new Set(result.faultLog.flatMap((f) => (f.kind === undefined ? [] : [f.kind])))].sort(),
      transport: pipeline.transport.kind,
      store: { kind: store.kind, location: store.location, database: store.database },
      replay: result.replay,
      phases: Object.fromEntries(phases.map((p) => [p.phase, Number(p.n)])),
      window_ms: windowMs,
      features: windows.map((w) => ({
        window_start: String(w.window_start),
        partial: Number(w.partial) === 1,
        nodes_reporting: Number(w.nodes_reporting),
        transitions: Number(w.transitions),
        msgs_sent: Number(w.msgs_sent),
        view_changes: Number(w.view_changes),
        recoveries: Number(w.recoveries),
        commit_latency_p99_us: Number(w.commit_latency_p99_us),
        hash_mismatches: Number(w.hash_mismatches),
        snapshots: Number(w.snapshots),
        rejected_total: Number(w.rejected_total),
        recovering: Number(labelsAt.get(String(w.window_start))?.recovering) === 1,
        active_faults: labelsAt.get(String(w.window_start))?.active_faults ?? [],
        labelled: Number(labelsAt.get(String(w.window_start))?.labelled) === 1,
      })),
      features_arrow: arrowPath,
      labels_arrow: labelsPath,
    };
  } finally {
    await pipeline.close();
  }
}

export function formatDemoSummary(summary: DemoSummary): string {
  const accounted = summary.events_stored + summary.events_dead_lettered === summary.events_emitted;
  const lines = [
    '',
    `Lattice demo — ${summary.protocol.toUpperCase()} under "${summary.scenario}", seed ${summary.seed}`,
    '',
    `  run id                ${summary.run_id}`,
    `  faults injected       ${summary.faults_injected.join(', ') || 'none'}`,
    `  client operations     ${summary.ops_completed}/${summary.ops_submitted} completed`,
    `  safety violations     ${summary.safety_violations}`,
    `  shadow mismatches     ${summary.shadow_mismatches}`,
    `  trace records         ${summary.events_emitted} emitted, ${summary.events_stored} stored, ${summary.events_dead_lettered} dead-lettered ${accounted ? '(all accounted for)' : '(MISMATCH)'}`,
    `  metrics snapshots     ${summary.snapshots_emitted} emitted, ${summary.snapshots_stored} stored (every 100 ms per live replica and client)`,
    `  trace hash            ${summary.trace_hash} (SHA-256)`,
    `  by phase              ${Object.entries(summary.phases).map(([p, n]) => `${p}=${n}`).join(' ')}`,
    '',
    `Cluster features per ${summary.window_ms} ms window (store table features_cluster; snaps = replica metrics snapshots, refused = messages replicas rejected; labels from the label reader, ? = unknown: no record in the window; * = partial last window):`,
    `  ${'window (UTC)'.padEnd(24)} ${'nodes'.padStart(5)} ${'snaps'.padStart(5)} ${'records'.padStart(8)} ${'msgs'.padStart(8)} ${'refused'.padStart(7)} ${'view chg'.padStart(8)} ${'recov'.padStart(6)} ${'p99 ms'.padStart(8)} ${'hash!='.padStart(6)}  labels`,
    ...summary.features.map(
      (w) =>
        `  ${(w.window_start + (w.partial ? ' *' : '')).padEnd(24)} ${String(w.nodes_reporting).padStart(5)} ${String(w.snapshots).padStart(5)} ${String(w.transitions).padStart(8)} ${String(w.msgs_sent).padStart(8)} ${String(w.rejected_total).padStart(7)} ${String(w.view_changes).padStart(8)} ${String(w.recoveries).padStart(6)} ${(w.commit_latency_p99_us / 1000).toFixed(1).padStart(8)} ${String(w.hash_mismatches).padStart(6)}  ${w.labelled ? w.active_faults.join(',') || (w.recovering ? 'recovering' : '-') : '?'}`,
    ),
    '',
    'Where to look:',
    `  store      ${summary.store.kind} ClickHouse at ${summary.store.location} (database ${summary.store.database}, table transitions)`,
    `  query      SELECT phase, count() FROM ${summary.store.database}.transitions FINAL WHERE run_id = '${summary.run_id}' GROUP BY phase`,
    `  features   ${summary.features_arrow} (Arrow IPC, per node and ${summary.window_ms} ms window)`,
    `  labels     ${summary.labels_arrow} (Arrow IPC, the same rows' ground truth)`,
    `  replay     lattice chaos run ${summary.scenario} --protocol ${summary.protocol} --seed ${summary.seed}`,
    '',
  ];
  return lines.join('\n');
}
