/**
 * The client workload: a small key space (so operations conflict) and a read/write/cas mix.
 * Values are unique per client and request, so a checker can tell every write apart.
 */
import type { Rng } from '../../core/rng.ts';
import type { Operation } from '../protocol.ts';

export interface WorkloadConfig {
  readonly keys: number;
  readonly read: number;
  readonly write: number;
  readonly cas: number;
  /** Pause between a completion and the client's next operation, microseconds. */
  readonly thinkUs: number;
}

export const DEFAULT_WORKLOAD: WorkloadConfig = { keys: 8, read: 0.4, write: 0.4, cas: 0.2, thinkUs: 500 };

export class WorkloadGenerator {
  /** The value this client last saw per key: cas ops expect it, so some of them apply. */
  private readonly lastSeen = new Map<string, string | null>();

  constructor(
    private readonly config: WorkloadConfig,
    private readonly clientId: number,
    private readonly rng: Rng,
  ) {}

  next(requestId: number): Operation {
    const { keys, read, write, cas } = this.config;
    const key = `k${this.rng.int(Math.max(1, keys))}`;
    const total = read + write + cas;
    const pick = total > 0 ? this.rng.next() * total : 0;
    const value = `c${this.clientId}r${requestId}`;
    if (pick < read || total === 0) return { kind: 'read', key };
    if (pick < read + write) return { kind: 'write', key, value };
    return { kind: 'cas', key, expected: this.lastSeen.get(key) ?? null, value };
  }

  observe(key: string, value: string | null): void {
    this.lastSeen.set(key, value);
  }
}
