/**
 * Group commit: the batches that the consumer hands over concurrently (one per partition) are
 * written to the store together, in inserts bounded by size (`rowsMax`) and by time (a partial
 * insert leaves at most `flushIntervalMs` after its first rows arrived). Each caller waits until
 * the insert holding its rows is stored, and only then may the transport commit its offsets.
 *
 * One insert runs at a time. While the store is unavailable that insert is retried with backoff,
 * every waiting caller heartbeats its group membership, and no caller returns, so the consumer
 * stops fetching: this is how consumption pauses, with memory bounded by the batches in hand.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { LatticeError } from '../core/errors.ts';
import type { TraceRecord } from '../core/trace-schema.ts';
import { withRetry, type RetryPolicy } from './retry.ts';

export interface RowsWriter {
  write(records: readonly TraceRecord[], rows?: readonly string[]): Promise<void>;
}

export interface GroupCommitOptions {
  readonly writer: RowsWriter;
  readonly rowsMax: number;
  readonly flushIntervalMs: number;
  readonly retry: RetryPolicy;
  /** False once shutting down: a failing insert then gives up and its callers throw (uncommitted). */
  readonly shouldContinue: () => boolean;
  readonly onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  readonly onStored?: (rows: number, insertMs: number) => void;
}

export interface Chunk {
  readonly records: readonly TraceRecord[];
  /** The same records as NDJSON text blocks, in order (see RecordWriter). */
  readonly rows: readonly string[];
}

interface Pending {
  readonly chunk: Chunk;
  readonly heartbeat: () => Promise<void>;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

export class GroupCommitWriter {
  private pending: Pending[] = [];
  private pendingRows = 0;
  private pendingSinceMs = 0;
  private writing = false;
  private timer: NodeJS.Timeout | undefined;
  /** Callers between `enter` and `leave` (batches being handled). */
  private active = 0;
  /** Callers waiting in `write`. When every active caller waits, nobody else will add rows. */
  private blocked = 0;

  constructor(private readonly options: GroupCommitOptions) {
    if (options.rowsMax < 1 || options.flushIntervalMs < 1) throw new RangeError('rowsMax and flushIntervalMs must be >= 1');
  }

  enter(): void {
    this.active++;
  }

  leave(): void {
    this.active--;
    this.maybeFlush();
  }

  /**
   * Queues a chunk (at most rowsMax rows) for the next insert; resolves when it is stored. A full
   * insert's worth starts at once, so a caller can decode its next chunk meanwhile.
   */
  submit(chunk: Chunk, heartbeat: () => Promise<void>): Promise<void> {
    if (chunk.records.length > this.options.rowsMax) return Promise.reject(new RangeError(`chunk of ${chunk.records.length} rows exceeds rowsMax ${this.options.rowsMax}`));
    const stored = new Promise<void>((resolve, reject) => {
      if (this.pending.length === 0) this.pendingSinceMs = performance.now();
      this.pending.push({ chunk, heartbeat, resolve, reject });
      this.pendingRows += chunk.records.length;
    });
    this.maybeFlush();
    return stored;
  }

  /**
   * Waits for a caller's chunks, settled one by one (a chunk the store rejects does not fail the
   * others). While it waits the caller counts as blocked: once every active caller is, the
   * partial insert goes without waiting for the flush interval.
   */
  async settle(stored: readonly Promise<void>[]): Promise<PromiseSettledResult<void>[]> {
    this.blocked++;
    this.maybeFlush();
    try {
      return await Promise.allSettled(stored);
    } finally {
      this.blocked--;
    }
  }

  /** Both steps at once, for a caller that has all its chunks in hand. */
  write(chunks: readonly Chunk[], heartbeat: () => Promise<void>): Promise<PromiseSettledResult<void>[]> {
    return this.settle(chunks.map((chunk) => this.submit(chunk, heartbeat)));
  }

  private maybeFlush(): void {
    if (this.writing || this.pending.length === 0) return;
    const waitedMs = performance.now() - this.pendingSinceMs;
    if (this.pendingRows >= this.options.rowsMax || this.blocked >= this.active || waitedMs >= this.options.flushIntervalMs) {
      void this.flush();
      return;
    }
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.maybeFlush();
    }, Math.max(1, this.options.flushIntervalMs - waitedMs));
  }

  private async flush(): Promise<void> {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.writing = true;
    const group: Pending[] = [];
    let rows = 0;
    while (this.pending.length > 0 && rows + this.pending[0]!.chunk.records.length <= this.options.rowsMax) {
      const next = this.pending.shift()!;
      group.push(next);
      rows += next.chunk.records.length;
    }
    this.pendingRows -= rows;
    this.pendingSinceMs = performance.now();
    try {
      await this.insertGroup(group);
    } finally {
      this.writing = false;
      this.maybeFlush();
    }
  }

  private async insertGroup(group: Pending[]): Promise<void> {
    try {
      await this.insert(group);
      for (const p of group) p.resolve();
    } catch (error) {
      const rejectedRows = error instanceof LatticeError && !error.retriable;
      if (!rejectedRows || group.length === 1) {
        for (const p of group) p.reject(error);
        return;
      }
      // The store refused some rows: find out whose, chunk by chunk, so the others are stored.
      for (const p of group) {
        try {
          await this.insert([p]);
          p.resolve();
        } catch (chunkError) {
          p.reject(chunkError);
        }
      }
    }
  }

  private async insert(group: readonly Pending[]): Promise<void> {
    const records: TraceRecord[] = [];
    const rows: string[] = [];
    for (const p of group) {
      for (const r of p.chunk.records) records.push(r);
      for (const r of p.chunk.rows) rows.push(r);
    }
    const started = performance.now();
    await withRetry(() => this.options.writer.write(records, rows), this.options.retry, {
      random: Math.random,
      sleep: (ms) => sleep(ms),
      shouldContinue: this.options.shouldContinue,
      onRetry: async (error, attempt, delayMs) => {
        this.options.onRetry?.(error, attempt, delayMs);
        await Promise.all(group.map((p) => p.heartbeat().catch(() => undefined)));
      },
    });
    this.options.onStored?.(records.length, performance.now() - started);
  }
}
