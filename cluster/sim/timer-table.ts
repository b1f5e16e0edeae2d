/**
 * The timers one simulated host has armed, as simulator events: handles for the protocol, and
 * one call to cancel them all when a node crashes (its timers die with it).
 *
 * Timers run on the node's monotonic clock (sim/node-clock.ts): a timer for `afterUs` fires when
 * that clock has advanced by `afterUs`, which in true time is earlier on a fast-drifting node and
 * later on a slow one. When the drift rate changes, `retime` moves every pending event to the
 * true time at which its monotonic deadline now falls. Wall-clock steps move nothing.
 */
import type { TimerHandle } from '../protocol.ts';
import type { NodeClock } from './node-clock.ts';
import type { SimEvent, Simulator } from './simulator.ts';

interface ArmedTimer {
  event: SimEvent;
  /** The monotonic-clock reading at which it fires. */
  readonly deadlineMonoUs: number;
  readonly fire: () => void;
}

export class TimerTable {
  private readonly armed = new Map<number, ArmedTimer>();
  private nextId = 1;

  /** `clock` null: timers on true time (clients, whose clocks no fault touches). */
  constructor(
    private readonly sim: Simulator,
    private readonly clock: NodeClock | null = null,
  ) {}

  set(afterUs: number, fire: () => void): TimerHandle {
    const id = this.nextId++;
    const clock = this.clock;
    // Without drift the monotonic clock advances with true time: the delay is afterUs itself.
    const delayUs = clock !== null && clock.drifting ? afterUs / (1 + clock.driftPpm / 1_000_000) : afterUs;
    const timer: ArmedTimer = { event: this.schedule(id, delayUs, fire), deadlineMonoUs: (clock?.monoUs() ?? this.sim.nowUs()) + afterUs, fire };
    this.armed.set(id, timer);
    return { id };
  }

  cancel(handle: TimerHandle): void {
    const timer = this.armed.get(handle.id);
    if (timer === undefined) return;
    this.sim.cancel(timer.event);
    this.armed.delete(handle.id);
  }

  cancelAll(): void {
    for (const timer of this.armed.values()) this.sim.cancel(timer.event);
    this.armed.clear();
  }

  /** The drift rate changed: every pending timer fires when its monotonic deadline is reached. */
  retime(): void {
    const clock = this.clock;
    if (clock === null) return;
    for (const [id, timer] of this.armed) {
      this.sim.cancel(timer.event);
      timer.event = this.schedule(id, Math.max(0, clock.trueDelayUntil(timer.deadlineMonoUs)), timer.fire);
    }
  }

  get size(): number {
    return this.armed.size;
  }

  private schedule(id: number, delayUs: number, fire: () => void): SimEvent {
    return this.sim.schedule(delayUs, 'timer', () => {
      this.armed.delete(id);
      fire();
    });
  }
}
