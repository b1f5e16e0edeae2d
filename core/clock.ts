/**
 * Time as a parameter. Seeded code reads time only through a Clock, so the simulator can run it on
 * virtual time and a real deployment on the wall clock.
 */
export interface Clock {
  /** Microseconds since the Unix epoch (virtual in simulation). */
  nowUs(): number;
}

/** The one place in Lattice that reads the wall clock for seeded code paths. */
export const systemClock: Clock = {
  nowUs: () => Math.round((performance.timeOrigin + performance.now()) * 1000),
};

/** A clock that only moves when told to; the simulator owns one. */
export class ManualClock implements Clock {
  private currentUs: number;

  constructor(startUs: number) {
    this.currentUs = startUs;
  }

  nowUs(): number {
    return this.currentUs;
  }

  advanceTo(us: number): void {
    if (us < this.currentUs) throw new RangeError(`virtual time cannot go back: ${us} < ${this.currentUs}`);
    this.currentUs = us;
  }
}
