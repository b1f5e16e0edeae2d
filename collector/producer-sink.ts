/**
 * The cluster's producer: a TraceSink that ships records to the transitions topic. Records are
 * keyed by run and node (`recordKey`), so one node's records land in one partition and stay in
 * order.
 *
 * `ProducerSink` sends each write at once (a bulk loader). `BatchingProducerSink` is the one the
 * cluster uses: it batches small writes, rides out broker outages of any length (retrying with
 * backoff, a bounded time per attempt and no bound overall), and when it must hold more than its
 * memory bound it either makes the writer wait (`whenFull: 'wait'`, the simulator's backpressure)
 * or never waits (`whenFull: 'spool'`, a real replica): what memory cannot hold goes to an
 * on-disk spool (collector/spool.ts), replayed in order when the broker is back, and what even the
 * spool cannot hold is dropped with exact accounting: counters, and a gap record per node
 * (core/gap-record.ts) delivered in order with that node's records.
 */
import type { GapReason, GapRecord } from '../core/gap-record.ts';
import { makeGapRecord } from '../core/gap-record.ts';
import { TransportError, invariant, isRetriable } from '../core/errors.ts';
import type { Logger } from '../core/logging.ts';
import type { TraceSink } from '../core/sink.ts';
import { snapshotJson, type MetricsSnapshot } from '../core/metrics-snapshot.ts';
import type { TraceRecord } from '../core/trace-schema.ts';
import type { Spool, SpoolBatch, SpoolEntry, SpoolEntryKind } from './spool.ts';
import type { OutgoingMessage, TransportProducer } from './transport/transport.ts';

export interface ProducerSinkOptions {
  readonly topic: string;
  /** Most records in one send; larger writes are split. */
  readonly sendRecordsMax?: number;
  /** Records of one node bundled into one message as NDJSON (default 1: one record per message). */
  readonly recordsPerMessageMax?: number;
}

/** A serialised record (or gap record) and its key, waiting to be sent. */
interface Keyed {
  readonly key: string;
  readonly text: string;
}

const MESSAGE_BYTES_MAX = 256 * 1024;
const RESOLVED = Promise.resolve();

/**
 * Lines → messages: each key's lines, in order, bundled up to `perMessage` lines (and 256 KiB)
 * per message. Order within a key is kept, which is the only order Kafka promises anyway.
 */
export function bundle(lines: readonly Keyed[], perMessage: number): OutgoingMessage[] {
  if (perMessage <= 1) return lines.map((l) => ({ key: l.key, value: l.text }));
  const open = new Map<string, { texts: string[]; bytes: number }>();
  const out: OutgoingMessage[] = [];
  const close = (key: string, group: { texts: string[] }) => {
    out.push({ key, value: group.texts.join('\n') });
    open.delete(key);
  };
  for (const line of lines) {
    let group = open.get(line.key);
    if (group && (group.texts.length >= perMessage || group.bytes + line.text.length > MESSAGE_BYTES_MAX)) {
      close(line.key, group);
      group = undefined;
    }
    if (!group) {
      group = { texts: [], bytes: 0 };
      open.set(line.key, group);
    }
    group.texts.push(line.text);
    group.bytes += line.text.length + 1;
  }
  for (const [key, group] of open) close(key, group);
  return out;
}

export class ProducerSink implements TraceSink {
  private sent = 0;

  constructor(
    private readonly producer: TransportProducer,
    private readonly options: ProducerSinkOptions,
  ) {}

  get recordsSent(): number {
    return this.sent;
  }

  async write(records: readonly TraceRecord[]): Promise<void> {
    const chunk = this.options.sendRecordsMax ?? 1_000;
    for (let start = 0; start < records.length; start += chunk) {
      const lines: Keyed[] = [];
      for (const record of records.slice(start, start + chunk)) lines.push({ key: recordKey(record), text: JSON.stringify(record) });
      await this.producer.send(this.options.topic, bundle(lines, this.options.recordsPerMessageMax ?? 1));
      this.sent += lines.length;
    }
  }

  async writeSnapshots(snapshots: readonly MetricsSnapshot[]): Promise<void> {
    if (snapshots.length === 0) return;
    await this.producer.send(this.options.topic, snapshots.map((s) => ({ key: recordKey(s), value: snapshotJson(s) })));
  }
}

/** Run and node: a node's records, gaps and snapshots share a key, so they stay in order. */
export function recordKey(record: Pick<TraceRecord, 'run_id' | 'node'>): string {
  return `${record.run_id}/${record.node}`;
}

/** What a producer has done so far. Records are trace records; gaps are counted apart. */
export interface ProducerStats {
  /** Trace records the transport accepted (replayed ones included). */
  readonly recordsSent: number;
  /** Trace records written to the spool. */
  readonly recordsSpooled: number;
  /** Trace records sent from the spool (left over by an earlier process included). */
  readonly recordsReplayed: number;
  /** Trace records that will never be delivered (each is inside a declared gap). */
  readonly recordsDropped: number;
  /** Gap records this producer declared (spool full, or a send rejected for good). */
  readonly gapsDeclared: number;
  /** Metrics snapshots the transport accepted. */
  readonly snapshotsSent: number;
  /** Metrics snapshots that will never be delivered (spool full, rejected for good, closed without a spool). */
  readonly snapshotsDropped: number;
  /** Send attempts that failed (each retried after a backoff, unless rejected for good). */
  readonly sendFailures: number;
  /** Bytes of the spool's files on disk. */
  readonly spoolBytes: number;
  /** Trace records waiting in the spool. */
  readonly spoolRecords: number;
  /** Trace records held in memory (waiting + being sent). */
  readonly recordsBuffered: number;
  /** Bytes of the spool found corrupt (and discarded) so far. */
  readonly spoolCorruptBytes: number;
}

/**
 * Counters that several sinks can share (the pipeline makes one sink per run, and its metrics
 * should count across them); a sink without one counts on its own.
 */
export class ProducerCounters {
  recordsSent = 0;
  recordsSpooled = 0;
  recordsReplayed = 0;
  recordsDropped = 0;
  gapsDeclared = 0;
  sendFailures = 0;
  snapshotsSent = 0;
  snapshotsDropped = 0;

  /** The totals as stats (the gauges, which belong to one sink, read 0): a metrics source. */
  snapshot(): ProducerStats {
    return {
      recordsSent: this.recordsSent,
      recordsSpooled: this.recordsSpooled,
      recordsReplayed: this.recordsReplayed,
      recordsDropped: this.recordsDropped,
      gapsDeclared: this.gapsDeclared,
      sendFailures: this.sendFailures,
      snapshotsSent: this.snapshotsSent,
      snapshotsDropped: this.snapshotsDropped,
      spoolBytes: 0,
      spoolRecords: 0,
      recordsBuffered: 0,
      spoolCorruptBytes: 0,
    };
  }
}

export type WhenFull = 'wait' | 'spool';

export interface BatchingProducerSinkOptions {
  readonly topic: string;
  /** Records in one send (one produce request, compressed as a whole per partition). */
  readonly batchRecordsMax?: number;
  /** A partial batch is sent this long after its first record arrived. */
  readonly lingerMs?: number;
  /** Records held in memory (waiting + being sent); past this, see `whenFull`. */
  readonly bufferedRecordsMax?: number;
  /**
   * Records of one node bundled into one message as NDJSON (default 100). Kafka's cost is per
   * message, so bundling multiplies throughput; the collector reads either form.
   */
  readonly recordsPerMessageMax?: number;
  /**
   * Uncompressed bytes in one send (default 4 MiB). Kafka refuses a partition's batch over the
   * topic's max.message.bytes (1 MiB by default; topics Lattice creates allow 16 MiB).
   */
  readonly sendBytesMax?: number;
  /**
   * What a write does when memory holds `bufferedRecordsMax` records. `wait` (default): it waits
   * for room (backpressure; for the simulator, whose virtual time can wait). `spool`: it never
   * waits; records go to `spool` (and, once anything is there, everything after it too, until it
   * has drained, so per-key order holds), and past the spool's bound they are dropped into gaps.
   */
  readonly whenFull?: WhenFull;
  /** The on-disk spool for `whenFull: 'spool'` (without one, overflow is dropped into gaps). */
  readonly spool?: Spool | null;
  /** Backoff after a failed send: doubles from the initial delay up to the max, with jitter. */
  readonly retryBackoffInitialMs?: number;
  readonly retryBackoffMaxMs?: number;
  /** One send attempt's bound; a send still pending then counts as failed (and is retried). */
  readonly sendTimeoutMs?: number;
  /** How long `close` keeps trying to deliver before it spools what is left (default 2 s). */
  readonly closeTimeoutMs?: number;
  readonly counters?: ProducerCounters;
  readonly logger?: Logger;
  /** Wall clock for gap records' declared_at_us (µs since the epoch). */
  readonly nowUs?: () => number;
}

/**
 * A line on its way: a record, or a gap record. Lines made here carry their node_seq range (so a
 * drop needs no parsing); lines read back from the spool do not, and are parsed if ever needed.
 */
interface Line extends Keyed {
  readonly kind: SpoolEntryKind;
  readonly runId?: string;
  readonly node?: number;
  readonly first?: number;
  readonly last?: number;
}

interface Range {
  readonly runId: string;
  readonly node: number;
  readonly first: number;
  readonly last: number;
}

interface Batch {
  readonly lines: readonly Line[];
  /** The spool batch to acknowledge once this one is done (null: nothing to acknowledge). */
  readonly spooled: SpoolBatch | null;
  /** The lines are (still) in the spool: a part of a spooled batch split after a rejection. */
  readonly onDisk: boolean;
}

type Outcome = { ok: true } | { ok: false; retriable: boolean; error: unknown };

/** Bounds a lingering send may take (each sendTimeoutMs) before the batch is sent again. */
const LINGER_WAITS_MAX = 3;

/** How a promise settled within `ms`, or 'pending'. Never rejects; a late rejection is swallowed. */
function settleWithin(promise: Promise<void>, ms: number): Promise<{ ok: true } | { ok: false; error: unknown } | 'pending'> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('pending'), ms);
    promise.then(
      () => {
        clearTimeout(timer);
        resolve({ ok: true });
      },
      (error: unknown) => {
        clearTimeout(timer);
        resolve({ ok: false, error });
      },
    );
  });
}

/** A transport producer that may also be reset (a fresh connection for the next send). */
export type ResettableProducer = TransportProducer & { reset?(): Promise<void> };

/** Pending gaps per node, at most; past it, a gap absorbs the next one (their ranges touch). */
const PENDING_GAPS_PER_KEY_MAX = 8;

function lineOfRecord(record: TraceRecord): Line {
  return { kind: 'record', key: recordKey(record), text: JSON.stringify(record), runId: record.run_id, node: record.node, first: record.node_seq, last: record.node_seq };
}

function lineOfGap(gap: GapRecord): Line {
  return { kind: 'gap', key: recordKey(gap), text: JSON.stringify(gap), runId: gap.run_id, node: gap.node, first: gap.node_seq_first, last: gap.node_seq_last };
}

function lineOfSnapshot(snapshot: MetricsSnapshot): Line {
  return { kind: 'snapshot', key: recordKey(snapshot), text: snapshotJson(snapshot) };
}

function lineOfEntry(entry: SpoolEntry): Line {
  return { kind: entry.kind, key: entry.key, text: entry.value };
}

function entryOfLine(line: Line): SpoolEntry {
  return { kind: line.kind, key: line.key, value: line.text };
}

/** The node_seq range of a line. */
function rangeOf(line: Line): Range {
  if (line.runId !== undefined && line.node !== undefined && line.first !== undefined && line.last !== undefined) return { runId: line.runId, node: line.node, first: line.first, last: line.last };
  // Either kind: the fields both share, and each one's own range fields.
  const parsed = JSON.parse(line.text) as Partial<Pick<TraceRecord, 'run_id' | 'node' | 'node_seq'> & Pick<GapRecord, 'node_seq_first' | 'node_seq_last'>>;
  if (line.kind === 'gap') return { runId: parsed.run_id as string, node: parsed.node as number, first: parsed.node_seq_first as number, last: parsed.node_seq_last as number };
  return { runId: parsed.run_id as string, node: parsed.node as number, first: parsed.node_seq as number, last: parsed.node_seq as number };
}

/**
 * The producer for callers that write a few records at a time (a node emits one transition per
 * step): records are serialised on arrival, gathered into batches of `batchRecordsMax` or
 * `lingerMs`, and sent one batch at a time, so order per key holds.
 *
 * A send that fails with a retriable error (the broker away, a timeout) is retried, the same
 * batch, after a backoff, for as long as it takes; meanwhile, with `whenFull: 'spool'`, what
 * memory holds goes to the spool and new writes follow it there. A send rejected for good (a
 * non-retriable error) turns its records into `sink_failed` gaps. Writes never fail.
 */
export class BatchingProducerSink implements TraceSink {
  private waiting: Line[] = [];
  private current: Batch | null = null;
  /** Gaps to send before anything else (of a record rejected for good). */
  private headGaps: Line[] = [];
  /** The halves of a rejected batch, sent next (then bisected again if rejected again). */
  private retryQueue: Batch[] = [];
  /** Per key: gaps of dropped records not yet in the spool; always the newest thing of that key. */
  private readonly pendingGaps = new Map<string, GapRecord[]>();
  /** True while the spool is the queue (it has content, or gaps wait for it). */
  private spooling = false;
  private sending: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private backoffTimer: NodeJS.Timeout | undefined;
  private backoffWake: (() => void) | undefined;
  private consecutiveFailures = 0;
  /** A send of the current batch that outlived its bound (see `attempt`). */
  private lingering: { readonly send: Promise<void>; waits: number } | null = null;
  /** Gap records the transport rejected for good (logged; nothing smaller could replace them). */
  gapsLost = 0;
  private outageStartedMs = 0;
  private urgent = 0;
  private closed = false;
  /** Set once `close` gave up waiting: a send still pending afterwards must not touch state. */
  private abandoned = false;
  private readonly roomWaiters: (() => void)[] = [];
  private readonly counters: ProducerCounters;
  private readonly spool: Spool | null;
  private readonly whenFull: WhenFull;
  private readonly batchRecordsMax: number;
  private readonly lingerMs: number;
  private readonly bufferedRecordsMax: number;
  private readonly perMessage: number;
  private readonly sendBytesMax: number;
  private readonly backoffInitialMs: number;
  private readonly backoffMaxMs: number;
  private readonly sendTimeoutMs: number;
  private readonly nowUs: () => number;

  constructor(
    private readonly producer: ResettableProducer,
    private readonly options: BatchingProducerSinkOptions,
  ) {
    this.batchRecordsMax = options.batchRecordsMax ?? 1_000;
    this.lingerMs = options.lingerMs ?? 20;
    this.bufferedRecordsMax = Math.max(options.bufferedRecordsMax ?? 20_000, this.batchRecordsMax);
    this.perMessage = options.recordsPerMessageMax ?? 100;
    this.sendBytesMax = options.sendBytesMax ?? 4 * 1024 * 1024;
    this.whenFull = options.whenFull ?? 'wait';
    this.spool = options.spool ?? null;
    this.backoffInitialMs = options.retryBackoffInitialMs ?? 100;
    this.backoffMaxMs = Math.max(options.retryBackoffMaxMs ?? 5_000, this.backoffInitialMs);
    this.sendTimeoutMs = options.sendTimeoutMs ?? 30_000;
    this.counters = options.counters ?? new ProducerCounters();
    this.nowUs = options.nowUs ?? (() => Date.now() * 1_000);
    invariant(this.spool === null || this.whenFull === 'spool', "a spool needs whenFull: 'spool'");
    // Left over by an earlier process: replay it first (new writes queue behind it).
    if (this.spool !== null && !this.spool.isEmpty) {
      this.spooling = true;
      this.kick(true);
    }
  }

  get recordsSent(): number {
    return this.counters.recordsSent;
  }

  /** Records held in memory: waiting, and the batch being sent if it came from memory. */
  get recordsBuffered(): number {
    let n = this.waiting.length;
    if (this.current !== null && !this.current.onDisk) n += this.current.lines.length;
    for (const batch of this.retryQueue) if (!batch.onDisk) n += batch.lines.length;
    return n;
  }

  get stats(): ProducerStats {
    const c = this.counters;
    return {
      recordsSent: c.recordsSent,
      recordsSpooled: c.recordsSpooled,
      recordsReplayed: c.recordsReplayed,
      recordsDropped: c.recordsDropped,
      gapsDeclared: c.gapsDeclared,
      sendFailures: c.sendFailures,
      snapshotsSent: c.snapshotsSent,
      snapshotsDropped: c.snapshotsDropped,
      spoolBytes: this.spool?.bytes ?? 0,
      spoolRecords: this.spool?.records ?? 0,
      recordsBuffered: this.recordsBuffered,
      spoolCorruptBytes: this.spool?.corruptBytes ?? 0,
    };
  }

  write(records: readonly TraceRecord[]): Promise<void> {
    if (this.closed) return Promise.reject(new TransportError('TRANSPORT_FAILED', 'write to a closed producer sink'));
    if (records.length === 0) return RESOLVED;
    if (this.whenFull === 'wait') {
      if (this.recordsBuffered + records.length > this.bufferedRecordsMax) return this.writeWhenRoom(records);
      // Room for all of them: the common case, without an async frame per call.
      for (const record of records) this.waiting.push(lineOfRecord(record));
      this.kick(false);
      return RESOLVED;
    }
    if (!this.spooling && this.recordsBuffered + records.length <= this.bufferedRecordsMax) {
      for (const record of records) this.waiting.push(lineOfRecord(record));
      this.kick(false);
      return RESOLVED;
    }
    if (!this.spooling) this.startSpooling();
    this.spoolLines(records.map(lineOfRecord));
    this.kick(true);
    return RESOLVED;
  }

  /**
   * A gap declared upstream (a node's trace buffer dropped records): delivered in order with the
   * records written before and after it. Never waits.
   */
  writeGap(gap: GapRecord): Promise<void> {
    if (this.closed) return Promise.reject(new TransportError('TRANSPORT_FAILED', 'write to a closed producer sink'));
    const line = lineOfGap(gap);
    if (this.spooling) {
      this.spoolLines([line]);
      this.kick(true);
    } else {
      this.waiting.push(line);
      this.kick(false);
    }
    return RESOLVED;
  }

  /**
   * Metrics snapshots: delivered in order with their node's records, as their own messages. They
   * are few (one per node per interval), so they never wait for room; what cannot be delivered is
   * counted in `snapshotsDropped` and logged (a trace gap record accounts for trace records only).
   */
  writeSnapshots(snapshots: readonly MetricsSnapshot[]): Promise<void> {
    if (this.closed) return Promise.reject(new TransportError('TRANSPORT_FAILED', 'write to a closed producer sink'));
    if (snapshots.length === 0) return RESOLVED;
    const lines = snapshots.map(lineOfSnapshot);
    if (this.spooling) {
      this.spoolLines(lines);
      this.kick(true);
    } else {
      for (const line of lines) this.waiting.push(line);
      this.kick(false);
    }
    return RESOLVED;
  }

  private async writeWhenRoom(records: readonly TraceRecord[]): Promise<void> {
    for (const record of records) {
      while (this.recordsBuffered >= this.bufferedRecordsMax) {
        if (this.abandoned) {
          // Closed while this write waited: what it still held is lost, and counted.
          this.counters.recordsDropped += records.length - records.indexOf(record);
          return;
        }
        this.kick(true);
        await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
      }
      this.waiting.push(lineOfRecord(record));
    }
    this.kick(false);
  }

  /**
   * Sends everything accepted so far (memory, spool, pending gaps); resolves when the transport
   * has taken it all. While the broker is away, that is when it is back.
   */
  async flush(): Promise<void> {
    this.urgent++;
    try {
      while (this.hasWork() && !this.abandoned) {
        this.kick(true);
        if (this.sending) await this.sending;
        else await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } finally {
      this.urgent--;
    }
  }

  /**
   * Stops taking writes, delivers what it can within `timeoutMs`, then puts what is left into
   * the spool (in order, so the next process on this spool replays it) and closes the spool.
   * Without a spool, what is left is dropped and counted. Does not close the transport producer.
   */
  async close(timeoutMs = this.options.closeTimeoutMs ?? 2_000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    let deadline: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      this.flush().then(() => true),
      new Promise<boolean>((resolve) => {
        deadline = setTimeout(() => resolve(false), timeoutMs);
      }),
    ]);
    clearTimeout(deadline);
    this.abandoned = true;
    this.wakeFromBackoff();
    if (!drained) this.persistLeftovers();
    this.spool?.close();
    for (const wake of this.roomWaiters.splice(0)) wake();
  }

  // Sending -----------------------------------------------------------------------------------

  private hasWork(): boolean {
    return this.current !== null || this.headGaps.length > 0 || this.retryQueue.length > 0 || this.waiting.length > 0 || (this.spooling && (this.pendingGaps.size > 0 || (this.spool !== null && !this.spool.isEmpty)));
  }

  private kick(now: boolean): void {
    if (this.sending || this.abandoned || !this.hasWork()) return;
    if (now || this.spooling || this.headGaps.length > 0 || this.retryQueue.length > 0 || this.waiting.length >= this.batchRecordsMax) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      this.sending = this.sendLoop();
      return;
    }
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.kick(true);
    }, this.lingerMs);
    this.timer.unref?.();
  }

  private async sendLoop(): Promise<void> {
    try {
      for (;;) {
        if (this.current === null) this.current = this.nextBatch();
        const batch = this.current;
        if (batch === null) break;
        const outcome = await this.attempt(batch);
        if (this.abandoned) return;
        if (outcome.ok) {
          this.delivered(batch);
        } else if (outcome.retriable) {
          this.failed(outcome.error);
          await this.backoff();
          if (this.abandoned) return;
          continue;
        } else {
          this.rejected(batch, outcome.error);
        }
        this.current = null;
        for (const wake of this.roomWaiters.splice(0)) wake();
        // A send that completes at once (in-process transport) would otherwise let a busy writer
        // run on microtasks alone and starve the consumers sharing this event loop.
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (this.abandoned) return;
        // Leave a partial batch to the linger timer unless someone is waiting for it.
        if (!this.spooling && this.headGaps.length === 0 && this.retryQueue.length === 0 && this.waiting.length < this.batchRecordsMax && this.roomWaiters.length === 0 && this.urgent === 0) break;
      }
    } finally {
      this.sending = undefined;
      if (!this.abandoned && this.hasWork()) this.kick(false);
    }
  }

  /** The next batch: gaps that must go first, a rejected batch's halves, then the spool while spooling, else memory. */
  private nextBatch(): Batch | null {
    if (this.headGaps.length > 0) return { lines: this.headGaps.splice(0, this.batchRecordsMax), spooled: null, onDisk: false };
    const retry = this.retryQueue.shift();
    if (retry !== undefined) return retry;
    if (this.spooling) {
      this.flushAllPendingGaps();
      const spooled = this.spool?.peek(this.batchRecordsMax, this.sendBytesMax) ?? null;
      if (spooled !== null) return { lines: spooled.entries.map(lineOfEntry), spooled, onDisk: true };
      // The spool is empty, so nothing of any key is queued before the pending gaps: they go
      // first, and memory is the queue again.
      for (const gaps of this.pendingGaps.values()) for (const gap of gaps) this.headGaps.push(lineOfGap(gap));
      this.pendingGaps.clear();
      this.spooling = false;
      if (this.spool !== null) this.logger?.info('producer: spool drained, sending from memory again', { records_replayed: this.counters.recordsReplayed });
      if (this.headGaps.length > 0) return { lines: this.headGaps.splice(0, this.batchRecordsMax), spooled: null, onDisk: false };
    }
    if (this.waiting.length === 0) return null;
    return { lines: this.waiting.splice(0, this.takeCount()), spooled: null, onDisk: false };
  }

  private get logger(): Logger | undefined {
    return this.options.logger;
  }

  /**
   * One attempt to send the current batch, bounded by sendTimeoutMs. An attempt still pending at
   * its bound is not abandoned: the next attempt waits for it first (a second send of the same
   * batch while the first may still land would only duplicate it, or put it after later ones);
   * if it lands, the batch is delivered. A producer that can `reset` (ReconnectingProducer) is
   * reset then, which ends a stuck attempt; after LINGER_WAITS_MAX bounds the sink sends anew.
   */
  private async attempt(batch: Batch): Promise<Outcome> {
    if (this.lingering !== null) {
      const previous = await settleWithin(this.lingering.send, this.sendTimeoutMs);
      if (previous === 'pending') {
        if (++this.lingering.waits < LINGER_WAITS_MAX) return { ok: false, retriable: true, error: this.timeoutError() };
        this.logger?.warn('producer: a send has not settled after several bounds; sending the batch again', { waits: this.lingering.waits });
      }
      this.lingering = null;
      if (previous !== 'pending') {
        if (previous.ok) return { ok: true };
        return { ok: false, retriable: isRetriable(previous.error), error: previous.error };
      }
    }
    const send = this.producer.send(this.options.topic, bundle(batch.lines, this.perMessage));
    const outcome = await settleWithin(send, this.sendTimeoutMs);
    if (outcome === 'pending') {
      this.lingering = { send, waits: 0 };
      void this.producer.reset?.();
      return { ok: false, retriable: true, error: this.timeoutError() };
    }
    return outcome.ok ? { ok: true } : { ok: false, retriable: isRetriable(outcome.error), error: outcome.error };
  }

  private timeoutError(): TransportError {
    return new TransportError('TRANSPORT_FAILED', `send to ${this.options.topic} took longer than ${this.sendTimeoutMs} ms`, { retriable: true });
  }

  private delivered(batch: Batch): void {
    let records = 0;
    let snapshots = 0;
    for (const line of batch.lines) {
      if (line.kind === 'record') records++;
      else if (line.kind === 'snapshot') snapshots++;
    }
    this.counters.recordsSent += records;
    this.counters.snapshotsSent += snapshots;
    if (batch.spooled !== null) {
      this.spool?.ack(batch.spooled);
      this.counters.recordsReplayed += batch.spooled.records;
      // Room in the spool: gaps waiting for it go in now, behind what is there.
      this.flushAllPendingGaps();
    }
    if (this.consecutiveFailures > 0) {
      this.logger?.info('producer: broker reachable again', { outage_ms: Date.now() - this.outageStartedMs, failed_attempts: this.consecutiveFailures, spool_records: this.spool?.records ?? 0 });
      this.consecutiveFailures = 0;
    }
  }

  private failed(error: unknown): void {
    this.counters.sendFailures++;
    if (this.consecutiveFailures === 0) {
      this.outageStartedMs = Date.now();
      this.logger?.warn(`producer: send failed, retrying with backoff${this.whenFull === 'spool' ? ' (spooling meanwhile)' : ''}`, { error });
    }
    this.consecutiveFailures++;
    // While the broker is away, what waits in memory is safer on disk (and memory is freed).
    if (this.spool !== null && !this.spooling && this.waiting.length > 0) this.startSpooling();
  }

  /**
   * A send rejected for good (a non-retriable error: a message too large, not authorised, ...):
   * the batch is bisected and its halves sent on their own, so that only the records that are
   * rejected alone become `sink_failed` gaps (sent before anything else of theirs).
   */
  private rejected(batch: Batch, error: unknown): void {
    if (batch.lines.length > 1) {
      const mid = Math.ceil(batch.lines.length / 2);
      this.retryQueue.unshift({ lines: batch.lines.slice(0, mid), spooled: null, onDisk: batch.onDisk }, { lines: batch.lines.slice(mid), spooled: batch.spooled, onDisk: batch.onDisk });
      return;
    }
    if (batch.spooled !== null) this.spool?.ack(batch.spooled);
    const line = batch.lines[0] as Line;
    if (line.kind === 'snapshot') {
      this.counters.snapshotsDropped++;
      this.logger?.error('producer: a metrics snapshot was rejected by the transport; it is lost', { error, key: line.key });
      return;
    }
    if (line.kind === 'gap') {
      // A gap alone rejected: there is nothing smaller to send instead.
      this.gapsLost++;
      this.logger?.error('producer: a gap record was rejected by the transport; it is lost', { error, gap: line.text });
      return;
    }
    this.counters.recordsDropped++;
    this.counters.gapsDeclared++;
    this.headGaps.push(lineOfGap(this.gapOf(rangeOf(line), 'sink_failed')));
    this.logger?.error('producer: a record was rejected for good; it is declared as a gap', { error, key: line.key });
  }

  private gapOf(range: Range, reason: GapReason): GapRecord {
    return makeGapRecord({ runId: range.runId, node: range.node, first: range.first, last: range.last, reason, declaredAtUs: this.nowUs() });
  }

  private backoff(): Promise<void> {
    const exp = Math.min(this.backoffMaxMs, this.backoffInitialMs * 2 ** Math.min(this.consecutiveFailures - 1, 30));
    // "Equal jitter": half fixed, half random, so producers that failed together spread out.
    const delay = exp / 2 + Math.random() * (exp / 2);
    return new Promise<void>((resolve) => {
      this.backoffWake = resolve;
      this.backoffTimer = setTimeout(() => {
        this.backoffWake = undefined;
        resolve();
      }, delay);
    });
  }

  private wakeFromBackoff(): void {
    if (this.backoffTimer) clearTimeout(this.backoffTimer);
    this.backoffTimer = undefined;
    const wake = this.backoffWake;
    this.backoffWake = undefined;
    wake?.();
  }

  /** How many waiting lines the next send takes: up to batchRecordsMax and sendBytesMax. */
  private takeCount(): number {
    let bytes = 0;
    let count = 0;
    for (const line of this.waiting) {
      if (count >= this.batchRecordsMax || (count > 0 && bytes + line.text.length > this.sendBytesMax)) break;
      bytes += line.text.length + 1;
      count++;
    }
    return count;
  }

  // Spooling ----------------------------------------------------------------------------------

  /** From now on the spool is the queue; what waits in memory goes first. */
  private startSpooling(): void {
    this.spooling = true;
    const lines = this.waiting;
    this.waiting = [];
    this.spoolLines(lines);
  }

  /** Appends lines in order; a line that does not fit is dropped into its node's pending gap. */
  private spoolLines(lines: readonly Line[]): void {
    const spool = this.spool;
    for (const line of lines) {
      if (this.pendingGaps.has(line.key) && !this.offerPendingGaps(line.key)) {
        this.drop(line);
        continue;
      }
      if (spool !== null && spool.offer(entryOfLine(line))) {
        if (line.kind === 'record') this.counters.recordsSpooled++;
      } else this.drop(line);
    }
    this.commitSpool();
  }

  private commitSpool(): void {
    if (this.spool === null) return;
    const { failed, error } = this.spool.commit();
    if (failed.length === 0) return;
    // A write error (disk full, EIO): the tail of this commit is not on disk. Account for it
    // exactly like a full spool, in order.
    this.logger?.error('producer: spool write failed; the records are declared as gaps', { error, entries: failed.length });
    for (const entry of failed) {
      if (entry.kind === 'record') this.counters.recordsSpooled--;
      this.drop(lineOfEntry(entry));
    }
  }

  /** A line the spool cannot take: a record joins (or opens) its node's pending gap. */
  private drop(line: Line): void {
    if (line.kind === 'snapshot') {
      this.counters.snapshotsDropped++;
      return;
    }
    if (line.kind === 'gap') {
      this.addPendingGap(line.key, JSON.parse(line.text) as GapRecord, false);
      return;
    }
    this.counters.recordsDropped++;
    const range = rangeOf(line);
    const tail = this.pendingGaps.get(line.key)?.at(-1);
    // The common case while the spool is full: the record extends its node's open gap.
    if (tail !== undefined && tail.reason === 'spool_full' && tail.node_seq_last + 1 === range.first) {
      this.extendTail(line.key, range.last);
      return;
    }
    this.addPendingGap(line.key, this.gapOf(range, 'spool_full'), true);
  }

  private extendTail(key: string, last: number): void {
    const list = this.pendingGaps.get(key) as GapRecord[];
    const tail = list[list.length - 1] as GapRecord;
    list[list.length - 1] = makeGapRecord({ runId: tail.run_id, node: tail.node, first: tail.node_seq_first, last, reason: tail.reason, declaredAtUs: tail.declared_at_us });
  }

  private addPendingGap(key: string, gap: GapRecord, declared: boolean): void {
    let list = this.pendingGaps.get(key);
    if (list === undefined) {
      list = [];
      this.pendingGaps.set(key, list);
    }
    const tail = list.at(-1);
    const touches = tail !== undefined && tail.node_seq_last + 1 === gap.node_seq_first;
    // Contiguous drops of one node for one reason are one gap; past the per-node bound, any
    // touching gap is absorbed by the last one (its reason kept).
    if (tail !== undefined && touches && (tail.reason === gap.reason || list.length >= PENDING_GAPS_PER_KEY_MAX)) {
      this.extendTail(key, gap.node_seq_last);
      return;
    }
    if (declared) this.counters.gapsDeclared++;
    list.push(gap);
  }

  /** Offers a key's pending gaps to the spool, oldest first; true if all of them went in. */
  private offerPendingGaps(key: string, force = false): boolean {
    const list = this.pendingGaps.get(key);
    if (list === undefined) return true;
    if (this.spool === null) return false;
    while (list.length > 0) {
      if (!this.spool.offer({ kind: 'gap', key, value: JSON.stringify(list[0]) }, force)) return false;
      list.shift();
    }
    this.pendingGaps.delete(key);
    return true;
  }

  private flushAllPendingGaps(force = false): void {
    if (this.pendingGaps.size === 0 || this.spool === null) return;
    for (const key of [...this.pendingGaps.keys()]) this.offerPendingGaps(key, force);
    this.commitSpool();
  }

  /**
   * Close gave up waiting: everything still held goes to the spool, in order. The batch being
   * sent from memory is older than the spool's content, so it goes in front (`prepend`).
   */
  private persistLeftovers(): void {
    const spool = this.spool;
    // What is held in memory, older than anything in the spool (a batch from the spool is still
    // there, unacknowledged), in sending order: the batch being sent (while it is, no new gap can have come first), the
    // gaps to send next, the halves of a rejected batch.
    const front: Line[] = [];
    if (this.current !== null && !this.current.onDisk) front.push(...this.current.lines);
    front.push(...this.headGaps);
    for (const batch of this.retryQueue) if (!batch.onDisk) front.push(...batch.lines);
    this.current = null;
    this.headGaps = [];
    this.retryQueue = [];
    if (spool === null) {
      const records = [...front, ...this.waiting].filter((l) => l.kind === 'record').length;
      this.counters.recordsDropped += records;
      this.counters.snapshotsDropped += [...front, ...this.waiting].filter((l) => l.kind === 'snapshot').length;
      this.logger?.error('producer: closed before the transport took everything, and there is no spool: records lost', { records, pending_gaps: this.pendingGaps.size });
      return;
    }
    if (!this.spooling) this.startSpooling();
    if (front.length > 0) {
      if (spool.canPrepend) spool.prepend(front.map(entryOfLine));
      else {
        // Only gaps get here (a batch rejected for good after part of the spool was replayed):
        // behind the spool's content, out of place but not lost.
        for (const line of front) spool.offer(entryOfLine(line), true);
        this.commitSpool();
      }
      for (const line of front) if (line.kind === 'record') this.counters.recordsSpooled++;
    }
    this.flushAllPendingGaps(true);
    this.logger?.warn('producer: closed before the broker took everything; the rest is in the spool for the next start', { spool_records: spool.records, spool_dir: spool.dir });
  }
}
