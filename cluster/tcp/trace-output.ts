/**
 * Trace output of a real-process node. Records are buffered and handed to a TraceSink in batches
 * off the protocol's path, so a slow sink costs memory up to a bound and then drops (counted),
 * never consensus latency: on the wall clock a replica cannot wait for the pipeline the way the
 * simulator does.
 *
 * The sink is pluggable. The default writes NDJSON, one file per node in the run directory. To
 * send records elsewhere (e.g. the Kafka producer sink), pass `sinkFactory` to `startNode`, or,
 * for processes started by the cluster manager, set `traceSinkModule` (CLI: --trace-sink-module):
 * a module path whose export `createTraceSink(context: TraceSinkContext)` returns a TraceSink
 * (or a promise of one). It is loaded once per node process.
 */
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { TraceSink } from '../../core/sink.ts';
import type { TraceRecord } from '../../core/trace-schema.ts';
import { LatticeError } from '../../core/errors.ts';

export interface TraceSinkContext {
  readonly node: number;
  readonly runId: string;
  readonly runDir: string;
  readonly protocol: string;
}

export type TraceSinkFactory = (context: TraceSinkContext) => TraceSink | Promise<TraceSink>;

export function nodeTracePath(runDir: string, node: number): string {
  return join(runDir, `node-${node}.ndjson`);
}

/** Appends records as NDJSON; `close` flushes and closes the file. */
export class NdjsonFileSink implements TraceSink {
  private readonly stream: WriteStream;

  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.stream = createWriteStream(path, { flags: 'a' });
  }

  write(records: readonly TraceRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    let text = '';
    for (const record of records) text += JSON.stringify(record) + '\n';
    return new Promise((resolve, reject) => {
      this.stream.write(text, (error) => (error ? reject(error) : resolve()));
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.stream.end(resolve));
  }
}

export const ndjsonSinkFactory: TraceSinkFactory = (context) => new NdjsonFileSink(nodeTracePath(context.runDir, context.node));

/** Loads a `createTraceSink` export from a module path (the process-mode hook). */
export async function loadSinkFactory(modulePath: string): Promise<TraceSinkFactory> {
  const loaded = (await import(pathToFileURL(modulePath).href)) as { createTraceSink?: unknown };
  if (typeof loaded.createTraceSink !== 'function') {
    throw new LatticeError('CONFIG_INVALID', `trace sink module ${modulePath} does not export a createTraceSink function`);
  }
  return loaded.createTraceSink as TraceSinkFactory;
}

export interface TraceBufferOptions {
  /** Flush when this many records are waiting... */
  readonly batchRecordsMax?: number;
  /** ...or this long after the first one arrived. */
  readonly flushIntervalMs?: number;
  /** Records held (waiting + being written) before new ones are dropped. */
  readonly bufferedRecordsMax?: number;
  readonly onError?: (error: unknown) => void;
}

export class TraceBuffer {
  private waiting: TraceRecord[] = [];
  private inFlight = 0;
  private writing: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | null = null;
  private readonly batchRecordsMax: number;
  private readonly flushIntervalMs: number;
  private readonly bufferedRecordsMax: number;
  accepted = 0;
  dropped = 0;
  failedWrites = 0;

  constructor(
    private readonly sink: TraceSink,
    private readonly options: TraceBufferOptions = {},
  ) {
    this.batchRecordsMax = options.batchRecordsMax ?? 2048;
    this.flushIntervalMs = options.flushIntervalMs ?? 100;
    this.bufferedRecordsMax = options.bufferedRecordsMax ?? 200_000;
  }

  push(record: TraceRecord): void {
    if (this.waiting.length + this.inFlight >= this.bufferedRecordsMax) {
      this.dropped++;
      return;
    }
    this.accepted++;
    this.waiting.push(record);
    if (this.waiting.length >= this.batchRecordsMax) this.flush();
    else if (this.timer === null) this.timer = setTimeout(() => this.flush(), this.flushIntervalMs);
  }

  /** Starts writing what is waiting; resolves when everything handed over so far is written. */
  flush(): Promise<void> {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.waiting.length > 0) {
      const batch = this.waiting;
      this.waiting = [];
      this.inFlight += batch.length;
      // Writes are chained so the sink sees records in node_seq order.
      this.writing = this.writing.then(async () => {
        try {
          await this.sink.write(batch);
        } catch (error) {
          this.failedWrites++;
          this.options.onError?.(error);
        } finally {
          this.inFlight -= batch.length;
        }
      });
    }
    return this.writing;
  }
}
