/**
 * Readiness of a collector, decided in one pure function from what its parts report: every
 * consumer must be running (not crashed, not rejoining), the store must be taking writes, and
 * records that wait must be moving. A process that answers `/metrics` but consumes nothing is
 * reported as exactly that.
 */
import type { CollectorHealth } from './collector.ts';

export interface Readiness {
  /** Consuming and storing: the collector does its job right now. */
  readonly ready: boolean;
  readonly reasons: readonly string[];
  readonly lag: number | null;
}

export interface ReadinessInput {
  readonly health: CollectorHealth;
  /** Messages waiting for this group; null when the broker could not be asked. */
  readonly lag: number | null;
  readonly nowMs: number;
  readonly startedAtMs: number;
  readonly stallAfterMs: number;
}

export function readinessOf(input: ReadinessInput): Readiness {
  const { health, lag, nowMs, stallAfterMs } = input;
  const reasons: string[] = [];
  if (health.state !== 'running') reasons.push(`not consuming: the collector is ${health.state}`);
  for (const [i, consumer] of health.consumers.entries()) {
    if (consumer.state !== 'running') reasons.push(`not consuming: consumer ${i} is ${consumer.state} (crashes ${consumer.crashes}, restarts ${consumer.restarts}${consumer.lastError ? `, last error: ${consumer.lastError}` : ''})`);
  }
  if (health.storeUnavailableSinceMs !== undefined) reasons.push(`not storing: the store has been unavailable for ${seconds(nowMs - health.storeUnavailableSinceMs)}`);
  else if (health.storeCallWaitingSinceMs !== undefined && nowMs - health.storeCallWaitingSinceMs > stallAfterMs) reasons.push(`not storing: a store call has waited ${seconds(nowMs - health.storeCallWaitingSinceMs)} for an answer`);
  if (lag === null) reasons.push('lag unknown: the broker did not answer');
  else if (lag > 0) {
    const last = Math.max(input.startedAtMs, ...health.consumers.map((c) => c.lastBatchAtMs ?? 0));
    if (nowMs - last > stallAfterMs) reasons.push(`stalled: ${lag} messages waiting, no batch handled for ${seconds(nowMs - last)}`);
  }
  return { ready: reasons.length === 0, reasons, lag };
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
