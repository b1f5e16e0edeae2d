/**
 * The discrete-event loop. Everything that happens in a simulated cluster (a message delivery, a
 * timer, a client submission, a fault action) is an event at a virtual microsecond; the loop pops
 * them in (time, insertion) order and moves a ManualClock. No wall-clock time is read anywhere,
 * so the same seed replays the same run byte for byte.
 */
import { ManualClock } from '../../core/clock.ts';
import { EventQueue, type Scheduled } from './event-queue.ts';

/** 2026-01-01T00:00:00Z in microseconds: a fixed origin so traces do not depend on when they ran. */
export const SIM_EPOCH_US = Date.UTC(2026, 0, 1) * 1000;

export type EventKind = 'message' | 'timer' | 'client' | 'fault';

export interface SimEvent extends Scheduled {
  readonly kind: EventKind;
  cancelled: boolean;
}

/** What an event runs: `run(target, arg)`. A shared function plus two fields instead of a new
 * closure per event, since message deliveries are most of the events. */
type EventCall<T, A> = (target: T, arg: A) => void;

class QueuedEvent implements SimEvent {
  cancelled = false;
  constructor(
    readonly timeUs: number,
    readonly order: number,
    readonly kind: EventKind,
    readonly run: EventCall<unknown, unknown>,
    readonly target: unknown,
    readonly arg: unknown,
  ) {}
}

const callAction: EventCall<() => void, undefined> = (action) => action();

export class Simulator {
  readonly clock: ManualClock;
  private readonly queue = new EventQueue<QueuedEvent>();
  private order = 0;
  /** Events executed so far (cancelled ones excluded); the benchmark's events/s numerator. */
  processed = 0;

  constructor(startUs: number = SIM_EPOCH_US) {
    this.clock = new ManualClock(startUs);
  }

  nowUs(): number {
    return this.clock.nowUs();
  }

  /** Schedules `action` `delayUs` from now (rounded to whole microseconds, never in the past). */
  schedule(delayUs: number, kind: EventKind, action: () => void): SimEvent {
    return this.scheduleAt(this.clock.nowUs() + Math.max(0, Math.round(delayUs)), kind, action);
  }

  scheduleAt(timeUs: number, kind: EventKind, action: () => void): SimEvent {
    return this.enqueue(timeUs, kind, callAction as EventCall<unknown, unknown>, action, undefined);
  }

  /** Like schedule(), running `run(target, arg)`: no closure to allocate on hot paths. */
  scheduleCall<T, A>(delayUs: number, kind: EventKind, run: EventCall<T, A>, target: T, arg: A): SimEvent {
    return this.enqueue(this.clock.nowUs() + Math.max(0, Math.round(delayUs)), kind, run as EventCall<unknown, unknown>, target, arg);
  }

  private enqueue(timeUs: number, kind: EventKind, run: EventCall<unknown, unknown>, target: unknown, arg: unknown): QueuedEvent {
    const event = new QueuedEvent(Math.max(timeUs, this.clock.nowUs()), this.order++, kind, run, target, arg);
    this.queue.push(event);
    return event;
  }

  cancel(event: SimEvent): void {
    event.cancelled = true;
  }

  get pending(): number {
    return this.queue.size;
  }

  /** Time of the next live event, or undefined when nothing is scheduled. */
  nextTimeUs(): number | undefined {
    for (;;) {
      const head = this.queue.peek();
      if (head === undefined) return undefined;
      if (!head.cancelled) return head.timeUs;
      this.queue.pop();
    }
  }

  /**
   * Runs events with time <= `untilUs`, stopping early once `shouldPause()` holds (checked after
   * each event) so the caller can flush trace batches and await backpressure. Returns true when
   * it reached `untilUs` (the clock is then moved there), false when it paused.
   */
  runUntil(untilUs: number, shouldPause: () => boolean = () => false): boolean {
    for (;;) {
      const head = this.queue.peek();
      if (head === undefined || head.timeUs > untilUs) {
        if (untilUs > this.clock.nowUs()) this.clock.advanceTo(untilUs);
        return true;
      }
      this.queue.pop();
      if (head.cancelled) continue;
      this.clock.advanceTo(head.timeUs);
      this.processed++;
      head.run(head.target, head.arg);
      if (shouldPause()) return false;
    }
  }
}
