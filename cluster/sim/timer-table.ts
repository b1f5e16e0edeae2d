/**
 * The timers one simulated host has armed, as simulator events: handles for the protocol, and
 * one call to cancel them all when a node crashes (its timers die with it).
 */
import type { TimerHandle } from '../protocol.ts';
import type { SimEvent, Simulator } from './simulator.ts';

export class TimerTable {
  private readonly events = new Map<number, SimEvent>();
  private nextId = 1;

  constructor(private readonly sim: Simulator) {}

  set(afterUs: number, fire: () => void): TimerHandle {
    const id = this.nextId++;
    const event = this.sim.schedule(afterUs, 'timer', () => {
      this.events.delete(id);
      fire();
    });
    this.events.set(id, event);
    return { id };
  }

  cancel(handle: TimerHandle): void {
    const event = this.events.get(handle.id);
    if (event === undefined) return;
    this.sim.cancel(event);
    this.events.delete(handle.id);
  }

  cancelAll(): void {
    for (const event of this.events.values()) this.sim.cancel(event);
    this.events.clear();
  }
}
