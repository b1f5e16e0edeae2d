/**
 * The event-level scorer on hand-made episodes: an alert inside an episode detects it (delay
 * from the episode's start to the alert's fire time), one within the grace after it detects it
 * late, one before it or after the grace is a false alarm, one in a recovering stretch is
 * counted apart; alerts need alert_windows consecutive windows; no point adjustment.
 */
import { describe, expect, it } from 'vitest';
import { alertsOf, classifyAlert, episodesOf, eventMetrics, percentile, scoreSeries, windowAveragePrecision } from '../../training/event-scoring.ts';
import { scores, series } from './series-support.ts';

const rule = { threshold: 5, alert_windows: 1 };
const grace = { grace_ms: 300 };

describe('alerts and episodes', () => {
  it('an alert fires at the end of the window completing alert_windows consecutive windows over the threshold, once per stretch', () => {
    const s = series(scores(20, [2, 3, 4, 8, 11, 12]));
    expect(alertsOf(s, rule).map((a) => a.firedAtMs)).toEqual([300, 900, 1200]);
    expect(alertsOf(s, { threshold: 5, alert_windows: 2 }).map((a) => a.firedAtMs)).toEqual([400, 1300]);
    expect(alertsOf(s, { threshold: 5, alert_windows: 2 })[0]!.startMs).toBe(200);
    // Strictly above: a score equal to the threshold does not alert.
    expect(alertsOf(series(scores(5, [1], 0, 5)), rule)).toEqual([]);
  });

  it('windows apart in time are not consecutive', () => {
    const s = { ...series([10, 10, 10]), windowStartMs: Float64Array.of(0, 100, 500) };
    expect(alertsOf(s, { threshold: 5, alert_windows: 2 }).map((a) => a.firedAtMs)).toEqual([200]);
    expect(alertsOf(s, { threshold: 5, alert_windows: 1 }).map((a) => a.firedAtMs)).toEqual([100, 600]);
  });

  it('episodes are stretches of faulty windows, with the union of their kinds', () => {
    const s = series(scores(20, []), { faulty: [[3, 6, 'crash'], [6, 8, 'drop'], [12, 14, 'delay']] });
    expect(episodesOf(s)).toEqual([
      { startMs: 300, endMs: 800, kinds: ['crash', 'drop'] },
      { startMs: 1200, endMs: 1400, kinds: ['delay'] },
    ]);
  });
});

describe('event scoring on hand-made episodes', () => {
  // One episode over windows 10–14 (1000–1500 ms), recovering 15–17 (1500–1800 ms).
  const marks = { faulty: [[10, 15, 'crash']] as [number, number, string][], recovering: [[15, 18]] as [number, number][] };
  const outcome = (high: number[]) => scoreSeries(series(scores(40, high), marks), rule, grace);

  it('an alert inside the episode detects it; the delay runs from its start to the fire time', () => {
    const o = outcome([12]);
    expect(o.episodes[0]).toMatchObject({ detected: true, delayMs: 300 });
    expect(o.falseAlarms).toBe(0);
  });

  it('the first window of the episode gives the shortest delay: one window', () => {
    expect(outcome([10]).episodes[0]!.delayMs).toBe(100);
  });

  it('an early alert (before the episode starts) is a false alarm and does not detect it, even if it stays on', () => {
    const o = outcome([8, 9, 10, 11]);
    expect(o.falseAlarms).toBe(1);
    expect(o.episodes[0]!.detected).toBe(false);
  });

  it('a late alert within the grace after the episode detects it late', () => {
    // Windows 15–17 are recovering too, but the grace (300 ms after 1500) comes first.
    const o = outcome([16]);
    expect(o.episodes[0]).toMatchObject({ detected: true, delayMs: 700 });
    expect(o.falseAlarms).toBe(0);
  });

  it('an alert in recovery after the grace is counted apart: neither detection nor false alarm', () => {
    // Window 18 fires at 1900 ms: past the grace (1500 + 300), inside recovery (1500–2000).
    const o = scoreSeries(series(scores(40, [18]), { faulty: marks.faulty, recovering: [[15, 20]] }), rule, grace);
    expect(o.episodes[0]!.detected).toBe(false);
    expect(o.falseAlarms).toBe(0);
    expect(o.alertsRecovering).toBe(1);
  });

  it('an alert after the grace and the recovery is a false alarm', () => {
    const o = outcome([25]);
    expect(o.episodes[0]!.detected).toBe(false);
    expect(o.falseAlarms).toBe(1);
  });

  it('fault-free time leaves out episodes, graces and recovery', () => {
    // 40 windows − 5 faulty − 3 recovering (which hold the 300 ms grace) = 32 windows.
    expect(outcome([]).faultFreeMs).toBe(3200);
  });

  it('classifies by fire time against every episode of the run', () => {
    const eps = [{ startMs: 0, endMs: 500, kinds: ['a'] }, { startMs: 700, endMs: 900, kinds: ['b'] }];
    expect(classifyAlert(600, eps, [], 200)).toEqual({ kind: 'detection', episode: 0 });
    expect(classifyAlert(800, eps, [], 200)).toEqual({ kind: 'detection', episode: 1 });
    expect(classifyAlert(1200, eps, [{ startMs: 900, endMs: 1300 }], 200)).toEqual({ kind: 'recovering' });
    expect(classifyAlert(1400, eps, [{ startMs: 900, endMs: 1300 }], 200)).toEqual({ kind: 'false_alarm' });
  });
});

describe('event metrics', () => {
  it('precision counts detected episodes and false alarms once each; F1 by kind uses the overall precision', () => {
    const a = series(scores(60, [11, 12, 13, 40]), { faulty: [[10, 15, 'crash'], [30, 33, 'drop']] }, 'a');
    const b = series(scores(60, [21]), { faulty: [[20, 25, 'crash']] }, 'b');
    const m = eventMetrics([a, b], rule, grace);
    expect(m.episodes).toBe(3);
    expect(m.detected).toBe(2);
    expect(m.false_alarms).toBe(1);
    expect(m.precision).toBeCloseTo(2 / 3, 12);
    expect(m.recall).toBeCloseTo(2 / 3, 12);
    expect(m.f1).toBeCloseTo(2 / 3, 12);
    expect(m.recall_by_fault).toEqual({ crash: 1, drop: 0 });
    expect(m.f1_by_fault.crash).toBeCloseTo((2 * (2 / 3)) / (2 / 3 + 1), 12);
    expect(m.f1_by_fault.drop).toBe(0);
    expect(m.f1_mean).toBeCloseTo(m.f1_by_fault.crash! / 2, 12);
    expect(m.delay_ms_p50).toBe(200);
    expect(m.delay_ms_p90).toBe(200);
    // Fault-free time: a: 60 − 8 faulty − 3 + 3 grace windows; b: 60 − 5 − 3.
    expect(m.fault_free_hours * 3_600_000).toBe((60 - 8 - 6 + 60 - 5 - 3) * 100);
    expect(m.false_alarms_per_hour).toBeCloseTo(1 / m.fault_free_hours, 9);
  });

  it('nearest-rank percentiles', () => {
    expect(percentile([], 0.5)).toBeNull();
    expect(percentile([300, 100, 200], 0.5)).toBe(200);
    expect(percentile([100, 200, 300, 400, 500, 600, 700, 800, 900, 1000], 0.9)).toBe(900);
  });

  it('PR-AUC is 1 for a perfect ranking, the positive share for a constant score, and leaves recovery out', () => {
    const s = series(scores(20, [5, 6]), { faulty: [[5, 7]], recovering: [[7, 9]] });
    expect(windowAveragePrecision([s], { grace_ms: 0 })).toBe(1);
    const flat = series(new Array(20).fill(1), { faulty: [[5, 7]], recovering: [[7, 9]] });
    expect(windowAveragePrecision([flat], { grace_ms: 0 })).toBeCloseTo(2 / 18, 12);
    // A recovering window scoring high does not count against it.
    const rec = series(scores(20, [5, 6, 7]), { faulty: [[5, 7]], recovering: [[7, 9]] });
    expect(windowAveragePrecision([rec], { grace_ms: 0 })).toBe(1);
  });
});
