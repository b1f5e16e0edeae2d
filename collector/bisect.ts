/**
 * Finds the items a store refuses by bisection: try them all; if the store rejects the insert
 * (a non-retriable error: the statement, not the connection, failed), split in halves and try
 * each, down to single items. The good items of a batch are stored, and only the poison ones come
 * back with the store's reason. k bad items among n cost O(k log n) inserts.
 */
import { LatticeError } from '../core/errors.ts';

export interface Rejected<T> {
  readonly item: T;
  readonly error: LatticeError;
}

/**
 * `insert` retries what is worth retrying itself; anything it throws that is not a non-retriable
 * LatticeError (unavailable store, shutdown, a bug) propagates, so the caller's batch stays
 * uncommitted and is redelivered.
 */
export async function insertBisecting<T>(items: readonly T[], insert: (items: readonly T[]) => Promise<void>, onSplit?: (size: number) => void): Promise<Rejected<T>[]> {
  if (items.length === 0) return [];
  try {
    await insert(items);
    return [];
  } catch (error) {
    if (!(error instanceof LatticeError) || error.retriable) throw error;
    if (items.length === 1) return [{ item: items[0]!, error }];
    onSplit?.(items.length);
    const middle = Math.ceil(items.length / 2);
    const left = await insertBisecting(items.slice(0, middle), insert, onSplit);
    const right = await insertBisecting(items.slice(middle), insert, onSplit);
    return [...left, ...right];
  }
}
