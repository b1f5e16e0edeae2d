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
import { traceRecordJson } from './trace-json.ts';

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

/**
 * A sink that takes records already encoded as NDJSON bytes. TraceBuffer encodes such a sink's
 * records as they arrive, into off-heap chunks: a record object then dies young instead of
 * waiting up to a flush interval and being promoted to the old generation (major-GC work).
 */
export interface NdjsonTraceSink extends TraceSink {
  writeNdjson(bytes: Buffer): Promise<void>;
}

function isNdjsonSink(sink: TraceSink): sink is NdjsonTraceSink {
  return typeof (sink as Partial<NdjsonTraceSink>).writeNdjson === 'function';
}

/** Appends records as NDJSON; `close` flushes and closes the file. */
export class NdjsonFileSink implements NdjsonTraceSink {
  private readonly stream: WriteStream;

  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.stream = createWriteStream(path, { flags: 'a' });
  }

  write(records: readonly TraceRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    let text = '';
    for (const record of records) text += traceRecordJson(record) + '\n';
    return this.writeNdjson(text);
  }

  writeNdjson(bytes: Buffer | string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.stream.write(bytes, (error) => (error ? reject(error) : resolve()));
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

/** Grows NDJSON bytes in off-heap chunks; `take` hands everything over and starts afresh. */
class NdjsonChunks {
  private static readonly CHUNK_BYTES = 64 * 1024;
  private sealed: Buffer[] = [];
  private chunk = Buffer.allocUnsafe(NdjsonChunks.CHUNK_BYTES);
  private used = 0;

  append(record: TraceRecord): void {
    const line = traceRecordJson(record) + '\n';
    // A UTF-16 code unit takes at most 3 UTF-8 bytes: room for that many means the line fits.
    const worstCase = line.length * 3;
    if (this.used + worstCase > this.chunk.length) {
      if (this.used > 0) this.sealed.push(this.chunk.subarray(0, this.used));
      this.chunk = Buffer.allocUnsafe(Math.max(NdjsonChunks.CHUNK_BYTES, worstCase));
      this.used = 0;
    }
    this.used += this.chunk.write(line, this.used, 'utf8');
  }

  take(): Buffer {
    if (this.used > 0) this.sealed.push(this.chunk.subarray(0, this.used));
    const bytes = this.sealed.length === 1 ? (this.sealed[0] as Buffer) : Buffer.concat(this.sealed);
    this.sealed = [];
    // The handed-over bytes are still being written: never reuse their memory.
    this.chunk = Buffer.allocUnsafe(NdjsonChunks.CHUNK_BYTES);
    this.used = 0;
    return bytes;
  }
}

export class TraceBuffer {
  private waiting: TraceRecord[] = [];
  /** For an NdjsonTraceSink: waiting records, already encoded (and `waiting` stays empty). */
  private readonly encoded: NdjsonChunks | null;
  private waitingCount = 0;
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
    this.encoded = isNdjsonSink(sink) ? new NdjsonChunks() : null;
  }

  push(record: TraceRecord): void {
    if (this.waitingCount + this.inFlight >= this.bufferedRecordsMax) {
      this.dropped++;
      return;
    }
    this.accepted++;
    if (this.encoded !== null) this.encoded.append(record);
    else this.waiting.push(record);
    this.waitingCount++;
    if (this.waitingCount >= this.batchRecordsMax) this.flush();
    else if (this.timer === null) this.timer = setTimeout(() => this.flush(), this.flushIntervalMs);
  }

  /** Starts writing what is waiting; resolves when everything handed over so far is written. */
  flush(): Promise<void> {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.waitingCount > 0) {
      const count = this.waitingCount;
      const write = this.takeWaiting();
      this.waitingCount = 0;
      this.inFlight += count;
      // Writes are chained so the sink sees records in node_seq order.
      this.writing = this.writing.then(async () => {
        try {
          await write();
        } catch (error) {
          this.failedWrites++;
          this.options.onError?.(error);
        } finally {
          this.inFlight -= count;
        }
      });
    }
    return this.writing;
  }

  /** Hands the waiting records over; returns the write that delivers them to the sink. */
  private takeWaiting(): () => Promise<void> {
    const sink = this.sink;
    if (this.encoded !== null && isNdjsonSink(sink)) {
      const bytes = this.encoded.take();
      return () => sink.writeNdjson(bytes);
    }
    const batch = this.waiting;
    this.waiting = [];
    return () => sink.write(batch);
  }
}
