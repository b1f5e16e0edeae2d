/**
 * One simulated node's clocks, as a function of true (simulator) time, the way Jepsen's clock
 * nemesis treats a real host's: a clock_skew fault *steps* the wall clock by an offset and makes
 * the oscillator *drift* (run fast or slow by `drift_ppm`).
 *
 * - The monotonic clock (CLOCK_MONOTONIC) runs at the drifting rate and is never stepped: timers
 *   use it, so a fast node's timeouts fire early in true time and a slow node's late, while a
 *   step moves no deadline (as for a real timer on the monotonic clock).
 * - The wall clock (CLOCK_REALTIME: `nowUs()`, `node_clock_us`) is the monotonic one plus the
 *   steps in force. When a drift fault ends the wall clock is set right (the drift it had
 *   accumulated is stepped away, like Jepsen's `reset` with ntpdate); the monotonic clock keeps
 *   its accumulated drift, since nothing steps it.
 *
 * With no drift every value is an integer and equal to true time plus the steps, so a run
 * without clock faults schedules exactly what it scheduled before this model existed.
 */
import { invariant } from '../../core/errors.ts';

const PPM = 1_000_000;

export class NodeClock {
  /** Sum of the active faults' offsets, µs. */
  private stepUs = 0;
  /** Drift stepped away from the wall clock when drift faults ended, µs. */
  private correctionUs = 0;
  /** Sum of the active faults' drifts: the monotonic clock advances 1 + ppm/10⁶ µs per true µs. */
  private ppm = 0;
  /** True time and accumulated drift at the last rate change (drift is linear in between). */
  private anchorTrueUs: number;
  private anchorDriftUs = 0;

  constructor(private readonly trueNowUs: () => number) {
    this.anchorTrueUs = trueNowUs();
  }

  get driftPpm(): number {
    return this.ppm;
  }

  get drifting(): boolean {
    return this.ppm !== 0;
  }

  /** Accumulated drift at true time `t`, µs (fractional while drifting). */
  private driftAt(t: number): number {
    return this.ppm === 0 ? this.anchorDriftUs : this.anchorDriftUs + ((t - this.anchorTrueUs) * this.ppm) / PPM;
  }

  /** The wall clock now (whole µs). */
  wallUs(): number {
    const t = this.trueNowUs();
    return t + Math.round(this.driftAt(t) - this.correctionUs) + this.stepUs;
  }

  /** The monotonic clock now (µs, fractional while drifting). */
  monoUs(): number {
    const t = this.trueNowUs();
    return t + this.driftAt(t);
  }

  /** True µs from now until the monotonic clock reads `deadlineMonoUs` at the current rate. */
  trueDelayUntil(deadlineMonoUs: number): number {
    return (deadlineMonoUs - this.monoUs()) / (1 + this.ppm / PPM);
  }

  /** A wall-clock step (a clock_skew offset starting, or being undone at its end). */
  step(deltaUs: number): void {
    this.stepUs += deltaUs;
  }

  /** Changes the drift rate from now on; the caller re-times pending timers. */
  addDrift(deltaPpm: number): void {
    const t = this.trueNowUs();
    this.anchorDriftUs = this.driftAt(t);
    this.anchorTrueUs = t;
    this.ppm += deltaPpm;
    invariant(this.ppm > -PPM, `clock drift ${this.ppm} ppm would stop or reverse the clock`);
  }

  /** A drift fault ended: the wall clock is set right (the accumulated drift stepped away). */
  resetWallDrift(): void {
    this.correctionUs = this.driftAt(this.trueNowUs());
  }
}
