/**
 * Retry with exponential backoff and full jitter, as a wrapper over any async operation. Only
 * errors flagged `retriable` are retried (unknown errors are bugs, and retrying hides them); the
 * caller bounds the loop with `shouldContinue` (e.g. "not shutting down").
 */
import { isRetriable } from '../core/errors.ts';

export interface RetryPolicy {
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly multiplier: number;
  /** Most attempts; Infinity retries for as long as `shouldContinue` says so. */
  readonly attemptsMax: number;
}

export const STORE_RETRY: RetryPolicy = { initialDelayMs: 100, maxDelayMs: 2_000, multiplier: 2, attemptsMax: Number.POSITIVE_INFINITY };

export interface RetryHooks {
  readonly random: () => number;
  readonly sleep: (ms: number) => Promise<void>;
  readonly shouldContinue: () => boolean;
  readonly onRetry?: (error: unknown, attempt: number, delayMs: number) => void | Promise<void>;
}

export async function withRetry<T>(operation: () => Promise<T>, policy: RetryPolicy, hooks: RetryHooks): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation();
    } catch (error) {
      if (!isRetriable(error) || attempt >= policy.attemptsMax || !hooks.shouldContinue()) throw error;
      const ceiling = Math.min(policy.maxDelayMs, policy.initialDelayMs * policy.multiplier ** (attempt - 1));
      const delayMs = Math.round(ceiling * (0.5 + hooks.random() / 2));
      await hooks.onRetry?.(error, attempt, delayMs);
      await hooks.sleep(delayMs);
    }
  }
}
