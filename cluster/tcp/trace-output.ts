/**
 * Trace output of a real-process node. Records are buffered and handed to a TraceSink in batches
 * off the protocol's path, so a slow sink costs memory up to a bound and then drops, never
 * consensus latency: on the wall clock a replica cannot wait for the pipeline the way the
 * simulator does. Nothing vanishes unaccounted: contiguous drops become one gap record
 * (core/gap-record.ts, reason `buffer_full`), and a batch the sink fails to take becomes
 * `sink_failed` gaps; gaps travel in order with the records, through the sink's `writeGap` (an
 * NDJSON sink gets them as lines of their own).
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
import { systemClock } from '../../core/clock.ts';
import { makeGapRecord, type GapReason, type GapRecord } from '../../core/gap-record.ts';
import type { TraceSink } from '../../core/sink.ts';
import type { TraceRecord } from '../../core/trace-schema.ts';
import { LatticeError } from '../../core/errors.ts';
import { traceRecordJson } from './trace-json.ts';
import { snapshotJson, type MetricsSnapshot } from '../../core/metrics-snapshot.ts';

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

/** A sink that can carry gap records, in order with the records (the Kafka producer sink). */
export interface GapTraceSink extends TraceSink {
  writeGap(gap: GapRecord): Promise<void>;
}

function isGapSink(sink: TraceSink): sink is GapTraceSink {
  return typeof (sink as Partial<GapTraceSink>).writeGap === 'function';
}

/** What a sink that spools (the Kafka producer sink) reports about itself. */
export interface TraceSinkStats {
  readonly recordsSpooled: number;
  readonly recordsReplayed: number;
  /** Records the sink dropped (each inside a gap it declared). */
  readonly recordsDropped: number;
  readonly gapsDeclared: number;
  readonly spoolBytes: number;
}

export interface ObservableTraceSink extends TraceSink {
  traceStats(): TraceSinkStats;
}

function isObservableSink(sink: TraceSink): sink is ObservableTraceSink {
  return typeof (sink as Partial<ObservableTraceSink>).traceStats === 'function';
}

/** The trace part of a node's status (wire.ts NodeStatus). */
export interface TraceStatus {
  readonly traceRecords: number;
  /** Records that will never reach the store, all causes (each inside a declared gap). */
  readonly traceDropped: number;
  readonly traceSpooled: number;
  readonly traceReplayed: number;
  readonly traceGaps: number;
  readonly traceSpoolBytes: number;
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

  /** A gap record as a line of its own (the collector's decoder tells it from a record). */
  writeGap(gap: GapRecord): Promise<void> {
    return this.writeNdjson(`${JSON.stringify(gap)}\n`);
  }

  /** Snapshots as lines of their own, between the records (the decoder tells them apart). */
  writeSnapshots(snapshots: readonly MetricsSnapshot[]): Promise<void> {
    if (snapshots.length === 0) return Promise.resolve();
    let text = '';
    for (const snapshot of snapshots) text += snapshotJson(snapshot) + '\n';
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
    this.appendLine(traceRecordJson(record) + '\n');
  }

  appendLine(line: string): void {
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

/** A node_seq range of one node's records (a batch's content, or a run of drops). */
interface SeqRun {
  readonly runId: string;
  readonly node: number;
  readonly first: number;
  last: number;
}

/** Gaps waiting to be re-sent at most; past it, touching gaps of a node merge. */
const RETRY_GAPS_MAX = 64;

/** One write to the sink; on failure it has already accounted for what did not get through. */
type Handover = () => Promise<void>;

/** Thrown by a handover after its accounting, so the buffer reports the sink's error. */
class HandoverFailed extends Error {
  constructor(readonly original: unknown) {
    super('trace sink write failed');
  }
}

export class TraceBuffer {
  /** Waiting records (and gaps, in place), unless the sink takes NDJSON. */
  private waiting: (TraceRecord | GapRecord)[] = [];
  /** For an NdjsonTraceSink: waiting records, already encoded (and `waiting` stays empty). */
  private readonly encoded: NdjsonChunks | null;
  /** What the waiting records and gaps cover, in order. */
  private waitingRuns: SeqRun[] = [];
  private waitingGaps: GapRecord[] = [];
  private waitingCount = 0;
  private inFlight = 0;
  private writing: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | null = null;
  /** Records being dropped right now (the buffer is full): one gap once the run ends. */
  private dropRun: SeqRun | null = null;
  /** Gaps of failed writes, sent before the next batch. */
  private retryGaps: GapRecord[] = [];
  private readonly batchRecordsMax: number;
  private readonly flushIntervalMs: number;
  private readonly bufferedRecordsMax: number;
  accepted = 0;
  /** Records this buffer dropped (full, or a failed write). */
  dropped = 0;
  /** Gaps this buffer declared. */
  gaps = 0;
  failedWrites = 0;
  /** Gaps the sink could not be given (it has no writeGap; an NDJSON sink always can). */
  gapsUndelivered = 0;

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
      const run = this.dropRun;
      if (run !== null && run.runId === record.run_id && run.node === record.node && run.last + 1 === record.node_seq) run.last = record.node_seq;
      else {
        this.endDropRun();
        this.dropRun = { runId: record.run_id, node: record.node, first: record.node_seq, last: record.node_seq };
      }
      return;
    }
    // The records before this one were dropped: their gap goes first.
    this.endDropRun();
    this.accepted++;
    if (this.encoded !== null) this.encoded.append(record);
    else this.waiting.push(record);
    this.noteRecord(record);
    this.waitingCount++;
    if (this.waitingCount >= this.batchRecordsMax) this.flush();
    else if (this.timer === null) this.timer = setTimeout(() => this.flush(), this.flushIntervalMs);
  }

  /** The trace part of the node's status: this buffer's counts plus what the sink reports. */
  status(): TraceStatus {
    const sink = isObservableSink(this.sink) ? this.sink.traceStats() : null;
    return {
      traceRecords: this.accepted,
      traceDropped: this.dropped + (sink?.recordsDropped ?? 0),
      traceSpooled: sink?.recordsSpooled ?? 0,
      traceReplayed: sink?.recordsReplayed ?? 0,
      traceGaps: this.gaps + (sink?.gapsDeclared ?? 0),
      traceSpoolBytes: sink?.spoolBytes ?? 0,
    };
  }

  /** Starts writing what is waiting; resolves when everything handed over so far is written. */
  flush(): Promise<void> {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.waitingCount > 0 || this.waitingGaps.length > 0 || this.retryGaps.length > 0) {
      const count = this.waitingCount;
      const handover = this.takeWaiting();
      this.waitingCount = 0;
      this.inFlight += count;
      // Writes are chained so the sink sees records in node_seq order.
      this.writing = this.writing.then(async () => {
        try {
          await handover();
        } catch (error) {
          this.failedWrites++;
          this.options.onError?.(error instanceof HandoverFailed ? error.original : error);
        } finally {
          this.inFlight -= count;
        }
      });
    }
    return this.writing;
  }

  /** The last flush: a run of drops still open becomes its gap, and everything is written. */
  async close(): Promise<void> {
    this.endDropRun();
    await this.flush();
    // Gaps of a write that failed during that flush get one more chance.
    if (this.retryGaps.length > 0) await this.flush();
  }

  private noteRecord(record: TraceRecord): void {
    const last = this.waitingRuns.at(-1);
    if (last !== undefined && last.runId === record.run_id && last.node === record.node && last.last + 1 === record.node_seq) last.last = record.node_seq;
    else this.waitingRuns.push({ runId: record.run_id, node: record.node, first: record.node_seq, last: record.node_seq });
  }

  private endDropRun(): void {
    const run = this.dropRun;
    if (run === null) return;
    this.dropRun = null;
    this.gaps++;
    this.enqueueGap(this.gapOf(run, 'buffer_full'));
  }

  private gapOf(run: SeqRun, reason: GapReason): GapRecord {
    return makeGapRecord({ runId: run.runId, node: run.node, first: run.first, last: run.last, reason, declaredAtUs: systemClock.nowUs() });
  }

  /** A gap in the stream, after the records waiting now and before the ones pushed later. */
  private enqueueGap(gap: GapRecord): void {
    if (this.encoded !== null) this.encoded.appendLine(`${JSON.stringify(gap)}\n`);
    else this.waiting.push(gap);
    this.waitingGaps.push(gap);
    if (this.timer === null) this.timer = setTimeout(() => this.flush(), this.flushIntervalMs);
  }

  /** What the sink failed to take: its records become `sink_failed` gaps, its gaps are re-sent. */
  private writeFailed(records: readonly SeqRun[], lostGaps: readonly GapRecord[]): void {
    const gaps: GapRecord[] = [...lostGaps];
    for (const run of records) {
      this.dropped += run.last - run.first + 1;
      this.gaps++;
      gaps.push(this.gapOf(run, 'sink_failed'));
    }
    gaps.sort((a, b) => a.node - b.node || a.node_seq_first - b.node_seq_first);
    for (const gap of gaps) this.addRetryGap(gap);
  }

  /** Touching gaps of one node and reason merge (none was delivered yet); past the bound, any touching ones. */
  private addRetryGap(gap: GapRecord): void {
    const list = this.retryGaps;
    const full = list.length >= RETRY_GAPS_MAX;
    const i = list.findIndex((g) => g.run_id === gap.run_id && g.node === gap.node && g.node_seq_last + 1 === gap.node_seq_first && (full || g.reason === gap.reason));
    const touching = list[i];
    if (touching !== undefined) {
      list[i] = makeGapRecord({ runId: touching.run_id, node: touching.node, first: touching.node_seq_first, last: gap.node_seq_last, reason: touching.reason, declaredAtUs: touching.declared_at_us });
      return;
    }
    list.push(gap);
  }

  /** Hands the waiting records over (gaps of failed writes first); returns the write that delivers them. */
  private takeWaiting(): Handover {
    const sink = this.sink;
    const retry = this.retryGaps;
    this.retryGaps = [];
    const records = this.waitingRuns;
    const gaps = [...retry, ...this.waitingGaps];
    this.waitingRuns = [];
    this.waitingGaps = [];
    if (this.encoded !== null && isNdjsonSink(sink)) {
      const bytes = this.encoded.take();
      const head = retry.map((g) => `${JSON.stringify(g)}\n`).join('');
      return async () => {
        try {
          await sink.writeNdjson(head.length === 0 ? bytes : Buffer.concat([Buffer.from(head), bytes]));
        } catch (error) {
          // One write: all of it failed.
          this.writeFailed(records, gaps);
          throw new HandoverFailed(error);
        }
      };
    }
    const batch: (TraceRecord | GapRecord)[] = [...retry, ...this.waiting];
    this.waiting = [];
    return () => this.deliver(batch);
  }

  /**
   * Records in runs through `write`, gaps in place through `writeGap`. At the first failure,
   * that part and everything after it is accounted as not delivered (and the sink's error thrown).
   */
  private async deliver(batch: readonly (TraceRecord | GapRecord)[]): Promise<void> {
    const sink = this.sink;
    let start = 0;
    for (let i = 0; i <= batch.length; i++) {
      const item = batch[i];
      if (item !== undefined && !isGap(item)) continue;
      try {
        if (i > start) await sink.write(batch.slice(start, i) as TraceRecord[]);
      } catch (error) {
        this.notDelivered(batch.slice(start));
        throw new HandoverFailed(error);
      }
      start = i + 1;
      if (item === undefined) break;
      if (!isGapSink(sink)) {
        this.gapsUndelivered++;
        continue;
      }
      try {
        await sink.writeGap(item);
      } catch (error) {
        this.notDelivered(batch.slice(i));
        throw new HandoverFailed(error);
      }
    }
  }

  private notDelivered(items: readonly (TraceRecord | GapRecord)[]): void {
    const runs: SeqRun[] = [];
    const gaps: GapRecord[] = [];
    for (const item of items) {
      if (isGap(item)) {
        gaps.push(item);
        continue;
      }
      const last = runs.at(-1);
      if (last !== undefined && last.runId === item.run_id && last.node === item.node && last.last + 1 === item.node_seq) last.last = item.node_seq;
      else runs.push({ runId: item.run_id, node: item.node, first: item.node_seq, last: item.node_seq });
    }
    this.writeFailed(runs, gaps);
  }
}

function isGap(item: TraceRecord | GapRecord): item is GapRecord {
  return (item as GapRecord).record_type === 'gap';
}
