/**
 * Event-level scoring, without point adjustment (Kim et al., AAAI 2022).
 *
 * - An **alert** starts when `alert_windows` consecutive windows (adjacent in time) score above
 *   the threshold, and fires at the end of the window that completes them (when it is known);
 *   it lasts while the windows stay above, and a new one needs a window at or below first.
 * - An **episode** is a stretch of consecutive labelled-faulty windows (`fault_active`) of a run,
 *   from its first window's start to its last window's end; its kinds are the union of theirs.
 * - An episode is **detected** when an alert fires inside it or within `grace_ms` after its end;
 *   its **delay** is the first such alert's fire time minus the episode's start. An alert that
 *   fires before an episode starts does not detect it, even if it is still on when it starts.
 * - A **false alarm** is an alert firing outside every episode, its grace, and every recovering
 *   stretch (`recovering` windows: back from a fault, not normal yet). Alerts in recovery are
 *   counted apart (`alerts_recovering`): neither detections nor false alarms.
 * - **Fault-free time** is the windows outside episodes, graces and recovery; false alarms per
 *   fault-free hour divide by it.
 * - Precision counts each detected episode once and each false alarm once:
 *   detected / (detected + false alarms); recall = detected / episodes; F1 their harmonic mean.
 *   Per fault kind, recall is over the episodes holding that kind and F1 uses the overall
 *   precision (a false alarm has no kind).
 * - PR-AUC is window-level average precision, threshold-free: faulty windows against fault-free
 *   ones (recovering and grace windows left out).
 */
import { invariant } from '../core/errors.ts';
import type { RunSeries } from './series.ts';

export interface AlertRule {
  /** Alert when the score is strictly above this. */
  readonly threshold: number;
  /** Consecutive windows above the threshold that make an alert (>= 1). */
  readonly alert_windows: number;
}

export interface EventScoringOptions {
  /** After an episode's end, an alert still counts as its detection (late), not as a false alarm. */
  readonly grace_ms: number;
}

export const EVENT_SCORING_DEFAULTS: EventScoringOptions = { grace_ms: 500 };

export interface Alert {
  readonly firedAtMs: number;
  readonly startMs: number;
}

export interface Episode {
  readonly startMs: number;
  readonly endMs: number;
  readonly kinds: readonly string[];
}

export type AlertClass = { readonly kind: 'detection'; readonly episode: number } | { readonly kind: 'recovering' } | { readonly kind: 'false_alarm' };

/** The alerts of one series under a rule. */
export function alertsOf(series: RunSeries, rule: AlertRule): Alert[] {
  invariant(Number.isInteger(rule.alert_windows) && rule.alert_windows >= 1, `alert_windows must be an integer >= 1, got ${rule.alert_windows}`);
  const alerts: Alert[] = [];
  let run = 0;
  let runStart = 0;
  const { windowStartMs: t, score, windowMs } = series;
  for (let i = 0; i < t.length; i++) {
    const adjacent = i > 0 && t[i]! - t[i - 1]! === windowMs;
    if (score[i]! > rule.threshold) {
      if (run === 0 || !adjacent) {
        run = 1;
        runStart = t[i]!;
      } else run++;
      if (run === rule.alert_windows) alerts.push({ firedAtMs: t[i]! + windowMs, startMs: runStart });
    } else run = 0;
  }
  return alerts;
}

/** Maximal stretches of consecutive faulty windows. */
export function episodesOf(series: RunSeries): Episode[] {
  const episodes: Episode[] = [];
  const { windowStartMs: t, faultActive, windowMs } = series;
  let i = 0;
  while (i < t.length) {
    if (faultActive[i] !== 1) {
      i++;
      continue;
    }
    const start = t[i]!;
    const kinds = new Set<string>();
    let last = i;
    while (i < t.length && faultActive[i] === 1) {
      for (const k of series.kinds[i]!) kinds.add(k);
      last = i;
      i++;
    }
    episodes.push({ startMs: start, endMs: t[last]! + windowMs, kinds: [...kinds].sort() });
  }
  return episodes;
}

/** Stretches [start, end) of recovering windows. */
export function recoveringOf(series: RunSeries): { startMs: number; endMs: number }[] {
  const out: { startMs: number; endMs: number }[] = [];
  const { windowStartMs: t, recovering, windowMs } = series;
  for (let i = 0; i < t.length; i++) {
    if (recovering[i] !== 1) continue;
    const last = out.at(-1);
    if (last !== undefined && last.endMs === t[i]!) last.endMs = t[i]! + windowMs;
    else out.push({ startMs: t[i]!, endMs: t[i]! + windowMs });
  }
  return out;
}

/** What an alert fired at `t` is: a detection (of the episode it falls in, else the latest whose grace holds it), in recovery, or a false alarm. */
export function classifyAlert(t: number, episodes: readonly Episode[], recovering: readonly { startMs: number; endMs: number }[], graceMs: number): AlertClass {
  let within = -1;
  for (let e = 0; e < episodes.length; e++) {
    const ep = episodes[e]!;
    if (t >= ep.startMs && t <= ep.endMs) return { kind: 'detection', episode: e };
    if (t > ep.endMs && t <= ep.endMs + graceMs) within = e;
  }
  if (within >= 0) return { kind: 'detection', episode: within };
  if (recovering.some((r) => t > r.startMs && t <= r.endMs)) return { kind: 'recovering' };
  return { kind: 'false_alarm' };
}

/** Milliseconds of one series outside episodes, their graces and recovery. */
export function faultFreeMs(series: RunSeries, episodes: readonly Episode[], graceMs: number): number {
  let ms = 0;
  for (let i = 0; i < series.windowStartMs.length; i++) {
    if (series.faultActive[i] === 1 || series.recovering[i] === 1) continue;
    const w = series.windowStartMs[i]!;
    if (episodes.some((ep) => w >= ep.endMs && w < ep.endMs + graceMs)) continue;
    ms += series.windowMs;
  }
  return ms;
}

export interface EpisodeOutcome {
  readonly runId: string;
  readonly startMs: number;
  readonly endMs: number;
  readonly kinds: readonly string[];
  readonly detected: boolean;
  /** First detecting alert's fire time − episode start; undefined when missed. */
  readonly delayMs?: number;
}

export interface SeriesOutcome {
  readonly episodes: EpisodeOutcome[];
  readonly falseAlarms: number;
  readonly alertsRecovering: number;
  readonly faultFreeMs: number;
}

export function scoreSeries(series: RunSeries, rule: AlertRule, options: EventScoringOptions = EVENT_SCORING_DEFAULTS): SeriesOutcome {
  const episodes = episodesOf(series);
  const recovering = recoveringOf(series);
  const first = new Array<number | undefined>(episodes.length).fill(undefined);
  let falseAlarms = 0;
  let alertsRecovering = 0;
  for (const alert of alertsOf(series, rule)) {
    const c = classifyAlert(alert.firedAtMs, episodes, recovering, options.grace_ms);
    if (c.kind === 'false_alarm') falseAlarms++;
    else if (c.kind === 'recovering') alertsRecovering++;
    else if (first[c.episode] === undefined) first[c.episode] = alert.firedAtMs;
  }
  return {
    episodes: episodes.map((ep, e) => ({ runId: series.runId, ...ep, detected: first[e] !== undefined, ...(first[e] !== undefined && { delayMs: first[e]! - ep.startMs }) })),
    falseAlarms,
    alertsRecovering,
    faultFreeMs: faultFreeMs(series, episodes, options.grace_ms),
  };
}

export interface EventMetrics {
  readonly runs: number;
  readonly episodes: number;
  readonly detected: number;
  readonly false_alarms: number;
  readonly alerts_recovering: number;
  readonly fault_free_hours: number;
  /** null when there is no fault-free time. */
  readonly false_alarms_per_hour: number | null;
  /** null when nothing was detected and nothing falsely alarmed. */
  readonly precision: number | null;
  readonly recall: number | null;
  readonly f1: number;
  /** Per kind (episodes holding it): F1 from that kind's recall and the overall precision. */
  readonly f1_by_fault: Readonly<Record<string, number>>;
  readonly recall_by_fault: Readonly<Record<string, number>>;
  readonly episodes_by_fault: Readonly<Record<string, number>>;
  /** Mean of f1_by_fault over the kinds present; null without episodes. */
  readonly f1_mean: number | null;
  readonly delay_ms_p50: number | null;
  readonly delay_ms_p90: number | null;
  readonly pr_auc: number | null;
}

const f1Of = (p: number | null, r: number | null) => (p === null || r === null || p + r === 0 ? 0 : (2 * p * r) / (p + r));

/** Event metrics over many series under one rule (or a rule per series: thresholds per context). */
export function eventMetrics(series: readonly RunSeries[], rule: AlertRule | ((series: RunSeries) => AlertRule), options: EventScoringOptions = EVENT_SCORING_DEFAULTS): EventMetrics {
  const outcomes = series.map((s) => scoreSeries(s, typeof rule === 'function' ? rule(s) : rule, options));
  const episodes = outcomes.flatMap((o) => o.episodes);
  const detected = episodes.filter((e) => e.detected).length;
  const falseAlarms = outcomes.reduce((n, o) => n + o.falseAlarms, 0);
  const freeMs = outcomes.reduce((n, o) => n + o.faultFreeMs, 0);
  const precision = detected + falseAlarms === 0 ? null : detected / (detected + falseAlarms);
  const recall = episodes.length === 0 ? null : detected / episodes.length;
  const kinds = [...new Set(episodes.flatMap((e) => e.kinds))].sort();
  const recallByFault: Record<string, number> = {};
  const f1ByFault: Record<string, number> = {};
  const episodesByFault: Record<string, number> = {};
  for (const kind of kinds) {
    const holding = episodes.filter((e) => e.kinds.includes(kind));
    episodesByFault[kind] = holding.length;
    recallByFault[kind] = holding.filter((e) => e.detected).length / holding.length;
    f1ByFault[kind] = f1Of(precision ?? 0, recallByFault[kind]);
  }
  const delays = episodes.flatMap((e) => (e.delayMs === undefined ? [] : [e.delayMs]));
  return {
    runs: series.length,
    episodes: episodes.length,
    detected,
    false_alarms: falseAlarms,
    alerts_recovering: outcomes.reduce((n, o) => n + o.alertsRecovering, 0),
    fault_free_hours: freeMs / 3_600_000,
    false_alarms_per_hour: freeMs === 0 ? null : falseAlarms / (freeMs / 3_600_000),
    precision,
    recall,
    f1: f1Of(precision, recall),
    f1_by_fault: f1ByFault,
    recall_by_fault: recallByFault,
    episodes_by_fault: episodesByFault,
    f1_mean: kinds.length === 0 ? null : kinds.reduce((s, k) => s + f1ByFault[k]!, 0) / kinds.length,
    delay_ms_p50: percentile(delays, 0.5),
    delay_ms_p90: percentile(delays, 0.9),
    pr_auc: windowAveragePrecision(series, options),
  };
}

/** Nearest-rank percentile (the smallest value with at least q of the values at or below it); null for none. */
export function percentile(values: readonly number[], q: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!;
}

/** Average precision of window scores: faulty windows positive, fault-free ones negative (recovering and grace windows out). Ties are taken together. */
export function windowAveragePrecision(series: readonly RunSeries[], options: EventScoringOptions = EVENT_SCORING_DEFAULTS): number | null {
  const scored: { s: number; y: number }[] = [];
  for (const s of series) {
    const episodes = episodesOf(s);
    for (let i = 0; i < s.windowStartMs.length; i++) {
      if (Number.isNaN(s.score[i]!) || s.recovering[i] === 1) continue;
      const w = s.windowStartMs[i]!;
      if (s.faultActive[i] === 1) scored.push({ s: s.score[i]!, y: 1 });
      else if (!episodes.some((ep) => w >= ep.endMs && w < ep.endMs + options.grace_ms)) scored.push({ s: s.score[i]!, y: 0 });
    }
  }
  const positives = scored.filter((x) => x.y === 1).length;
  if (positives === 0) return null;
  scored.sort((a, b) => b.s - a.s);
  let tp = 0;
  let fp = 0;
  let ap = 0;
  let i = 0;
  while (i < scored.length) {
    const s = scored[i]!.s;
    let dtp = 0;
    let dfp = 0;
    while (i < scored.length && scored[i]!.s === s) {
      if (scored[i]!.y === 1) dtp++;
      else dfp++;
      i++;
    }
    tp += dtp;
    fp += dfp;
    ap += (dtp / positives) * (tp / (tp + fp));
  }
  return ap;
}
