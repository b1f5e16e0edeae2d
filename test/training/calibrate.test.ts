/**
 * Threshold calibration honours a budget of false alarms per fault-free hour on the calibration
 * runs, counts alerts (not windows), and is tight: the next lower candidate would break it.
 */
import { describe, expect, it } from 'vitest';
import { createRng } from '../../core/rng.ts';
import { calibrateThreshold } from '../../training/calibrate.ts';
import { eventMetrics, scoreSeries } from '../../training/event-scoring.ts';
import { series } from './series-support.ts';

/** `hours` of fault-free 100 ms windows with heavy-tailed scores, split into runs of 10 minutes. */
function normalRuns(seed: number, hours: number) {
  const rng = createRng(seed);
  const perRun = 6_000;
  return Array.from({ length: Math.round((hours * 36_000) / perRun) }, (_, r) => series(Array.from({ length: perRun }, () => -Math.log(1 - rng.next())), {}, `run-${seed}-${r}`));
}

const maxOf = (xs: readonly number[]) => xs.reduce((m, x) => (x > m ? x : m), Number.NEGATIVE_INFINITY);

describe('threshold calibration', () => {
  const calibration = normalRuns(1, 4);

  it('honours the budget of false alarms per fault-free hour on the calibration runs', () => {
    for (const budget of [0, 5, 50]) {
      const c = calibrateThreshold(calibration, { budget_false_alarms_per_hour: budget, alert_windows: 1, grace_ms: 0 });
      expect(c.fault_free_hours).toBeCloseTo(4, 9);
      expect(c.allowed_false_alarms).toBe(Math.floor(budget * 4));
      expect(c.false_alarms).toBeLessThanOrEqual(c.allowed_false_alarms);
      const m = eventMetrics(calibration, { threshold: c.threshold, alert_windows: 1 }, { grace_ms: 0 });
      expect(m.false_alarms).toBe(c.false_alarms);
      expect(m.false_alarms_per_hour!).toBeLessThanOrEqual(budget);
      // Tight: the largest fault-free score below the threshold would alert more than allowed.
      const below = maxOf(calibration.flatMap((s) => Array.from(s.score).filter((x) => x < c.threshold)));
      expect(calibration.reduce((n, s) => n + scoreSeries(s, { threshold: below, alert_windows: 1 }, { grace_ms: 0 }).falseAlarms, 0)).toBeGreaterThan(c.allowed_false_alarms);
    }
  });

  it('a zero budget puts the threshold at the largest fault-free score', () => {
    const c = calibrateThreshold(calibration, { budget_false_alarms_per_hour: 0, alert_windows: 1, grace_ms: 0 });
    expect(c.threshold).toBe(maxOf(calibration.flatMap((s) => Array.from(s.score))));
    expect(c.false_alarms).toBe(0);
  });

  it('counts alerts, not windows: two consecutive windows are one alert', () => {
    const s = series([0, 9, 9, 0, 0, 0, 0, 0, 0, 0]);
    // 1 s of fault-free time: a budget of 3600/h allows one alert.
    const c = calibrateThreshold([s], { budget_false_alarms_per_hour: 3_600, alert_windows: 1, grace_ms: 0 });
    expect(c.allowed_false_alarms).toBe(1);
    expect(c.threshold).toBe(0);
    expect(c.false_alarms).toBe(1);
  });

  it('a threshold placed on calibration runs holds roughly on other runs of the same traffic', () => {
    const c = calibrateThreshold(calibration, { budget_false_alarms_per_hour: 50, alert_windows: 2, grace_ms: 0 });
    const held = eventMetrics(normalRuns(2, 4), { threshold: c.threshold, alert_windows: 2 }, { grace_ms: 0 });
    expect(held.false_alarms_per_hour!).toBeLessThan(50 * 2);
  });

  it('refuses runs without fault-free time and a negative budget', () => {
    expect(() => calibrateThreshold([series([1, 2, 3], { faulty: [[0, 3]] })])).toThrow(/no fault-free windows/);
    expect(() => calibrateThreshold(calibration, { budget_false_alarms_per_hour: -1 })).toThrow(/budget_false_alarms_per_hour: expected a number >= 0/);
  });
});
