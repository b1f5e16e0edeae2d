/**
 * The completeness watermark of a run: which windows are final, i.e. no record still to come
 * would change them. The live detector scores a window once it is final.
 *
 * The rule, in event time (ts_us, true time):
 * - Each node of the run (store/windows.ts: every node that reported or led) has a newest record,
 *   its `last_ts_us`; the run's head is the newest of all.
 * - A node more than `node_silence_ms` behind the head (or that never reported) is *silent*: it
 *   crashed, or is cut off. It does not hold the watermark back, so a crashed node cannot block
 *   it forever; its windows become final with zero rows (absence is evidence). A node that stops
 *   does not write records late, it writes none; what would arrive late is a node whose records
 *   were held up on their way (a producer spooling through a broker outage), and those correct
 *   their windows on the next refresh, after the watermark called them final.
 * - The watermark is the slowest live node's newest record minus `allowed_lateness_ms`; a window
 *   is final when its end is at or before it.
 * - A run with nothing ingested for `run_idle_ms` (wall time, against the store's ingest times)
 *   is ended: every window is final, the partial last one included.
 *
 * Computed when asked, from `transitions`; the features of a final window are final once a refresh
 * ran after the watermark was computed (`readFinalFeatures` does both, in that order).
 */
import { configSchema, type LatticeConfig } from '../core/config.ts';
import { invariant } from '../core/errors.ts';
import type { Store } from './client.ts';
import { readFeatureRows, refreshFeatures, type FeatureLevel } from './features.ts';
import { queryRows } from './transitions.ts';
import { windowStartMs } from './windows.ts';

export type FeatureSettings = LatticeConfig['features'];
export const DEFAULT_FEATURE_SETTINGS: FeatureSettings = configSchema.shape.features.parse({});

export interface NodeCompleteness {
  readonly node: number;
  /** Newest record's ts_us; null for a node known only as a leader. */
  readonly last_ts_us: number | null;
  readonly silent: boolean;
}

export interface Completeness {
  readonly run_id: string;
  readonly window_ms: number;
  /** First and last window of the run (ms since epoch); null when the run has no records. */
  readonly first_window_start_ms: number | null;
  readonly last_window_start_ms: number | null;
  /** Every window starting at or before this (ms since epoch) is final; null: none is yet. */
  readonly final_through_window_start_ms: number | null;
  /** Event time up to which the run is complete (µs); null when ended (complete throughout) or empty. */
  readonly watermark_us: number | null;
  /** The run's newest record (µs). */
  readonly head_us: number | null;
  /** Nothing ingested for run_idle_ms: every window is final. */
  readonly ended: boolean;
  readonly nodes: readonly NodeCompleteness[];
}

export interface CompletenessOptions {
  readonly settings?: FeatureSettings;
  /** Wall time now, ms since epoch, compared with the ingest times; default: the store's own clock. */
  readonly nowMs?: number;
}

/** The completeness watermark of one run at `settings.window_ms` (see the header for the rule). */
export async function completeness(store: Store, runId: string, options: CompletenessOptions = {}): Promise<Completeness> {
  const settings = options.settings ?? DEFAULT_FEATURE_SETTINGS;
  const windowMs = settings.window_ms;
  // No FINAL: a duplicate repeats a record's time exactly, and its later ingest time only keeps a
  // run that is still being redelivered from counting as ended.
  const params = { run_id: runId };
  const perNode = await queryRows<{ node: number; last_ts_us: string }>(store, `SELECT node, max(ts_us) AS last_ts_us FROM ${store.table('transitions')} WHERE run_id = {run_id:String} GROUP BY node ORDER BY node`, params);
  if (perNode.length === 0) {
    return { run_id: runId, window_ms: windowMs, first_window_start_ms: null, last_window_start_ms: null, final_through_window_start_ms: null, watermark_us: null, head_us: null, ended: false, nodes: [] };
  }
  const [run] = await queryRows<{ leaders: number[]; first_us: string; newest_ingest_ms: string; now_ms: string }>(
    store,
    `SELECT groupUniqArray(leader) AS leaders, min(ts_us) AS first_us, toUnixTimestamp64Milli(max(ingested_at)) AS newest_ingest_ms, toUnixTimestamp64Milli(now64(3)) AS now_ms
     FROM ${store.table('transitions')} WHERE run_id = {run_id:String}`,
    params,
  );
  invariant(run !== undefined, `run ${runId}: an aggregate without GROUP BY returns one row`);
  const lastOf = new Map(perNode.map((r) => [Number(r.node), Number(r.last_ts_us)]));
  const headUs = Math.max(...lastOf.values());
  const silenceUs = settings.node_silence_ms * 1_000;
  const nodes: NodeCompleteness[] = [...new Set([...lastOf.keys(), ...run.leaders.map(Number)])]
    .sort((a, b) => a - b)
    .map((node) => {
      const last = lastOf.get(node) ?? null;
      return { node, last_ts_us: last, silent: last === null || headUs - last > silenceUs };
    });
  const live = nodes.flatMap((n) => (n.silent || n.last_ts_us === null ? [] : [n.last_ts_us]));
  invariant(live.length > 0, `run ${runId}: the node at the head is never silent`);
  const nowMs = options.nowMs ?? Number(run.now_ms);
  const ended = nowMs - Number(run.newest_ingest_ms) >= settings.run_idle_ms;
  const firstWindow = windowStartMs(Number(run.first_us), windowMs);
  const lastWindow = windowStartMs(headUs, windowMs);
  const watermarkUs = ended ? null : Math.min(...live) - settings.allowed_lateness_ms * 1_000;
  // The last window whose end (start + window_ms) is at or before the watermark.
  const through = watermarkUs === null ? lastWindow : Math.min(lastWindow, windowStartMs(watermarkUs, windowMs) - windowMs);
  return {
    run_id: runId,
    window_ms: windowMs,
    first_window_start_ms: firstWindow,
    last_window_start_ms: lastWindow,
    final_through_window_start_ms: through >= firstWindow ? through : null,
    watermark_us: watermarkUs,
    head_us: headUs,
    ended,
    nodes,
  };
}

export interface FinalFeatures<T> {
  readonly completeness: Completeness;
  /** Rows of the final windows after `afterWindowStartMs`, through the watermark. */
  readonly rows: T[];
}

/**
 * For a live reader (the detector): the watermark, then a refresh of the windows after the
 * reader's cursor, then the rows of the windows that are final. In that order, every record the
 * watermark counted was visible to the refresh, so the rows returned are final.
 */
export async function readFinalFeatures<T = Record<string, unknown>>(
  store: Store,
  runId: string,
  level: FeatureLevel,
  options: CompletenessOptions & { readonly afterWindowStartMs?: number } = {},
): Promise<FinalFeatures<T>> {
  const settings = options.settings ?? DEFAULT_FEATURE_SETTINGS;
  const state = await completeness(store, runId, options);
  const through = state.final_through_window_start_ms;
  if (through === null || (options.afterWindowStartMs !== undefined && through <= options.afterWindowStartMs)) return { completeness: state, rows: [] };
  await refreshFeatures(store, runId, { windowMs: settings.window_ms, ...(options.afterWindowStartMs === undefined ? {} : { sinceUs: (options.afterWindowStartMs + settings.window_ms) * 1_000 }) });
  const rows = await readFeatureRows<T>(store, {
    runId,
    level,
    windowMs: settings.window_ms,
    throughWindowStartMs: through,
    ...(options.afterWindowStartMs === undefined ? {} : { afterWindowStartMs: options.afterWindowStartMs }),
  });
  return { completeness: state, rows };
}
