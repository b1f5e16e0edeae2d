/**
 * The collector: consumes trace records, validates them, writes them to the store and only then
 * lets the transport commit the offsets (at-least-once). Nothing is dropped or changed without a
 * trace: malformed input goes to the dead-letter topic with its reason and exact bytes; records
 * the store already holds are skipped if identical and dead-lettered as `conflict` if not
 * (known-records.ts); an insert the store refuses is bisected so only the refused records are
 * dead-lettered (bisect.ts); gap records go to `trace_gaps`. All of it happens before the commit.
 * Batches handed over concurrently (one per partition) are stored together by group commit
 * (group-commit.ts), in inserts bounded by rows and by time. While the store is unavailable every
 * store call is retried with backoff and no batch returns, which holds back consumption (no
 * unbounded buffering, no reordering within a node: one node is one partition, handled in order).
 */
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { isRetriable, LatticeError } from '../core/errors.ts';
import type { Logger } from '../core/logging.ts';
import type { GapRecord } from '../core/gap-record.ts';
import type { MetricsSnapshot } from '../core/metrics-snapshot.ts';
import { canonicalRecordJson, type TraceRecord } from '../core/trace-schema.ts';
import type { NodeSeqRange } from '../store/transitions.ts';
import { insertBisecting } from './bisect.ts';
import { bytesOf, withoutKnownRecords, type Entry, type Unit } from './known-records.ts';
import { nodeKeyOf, StoredWatermarks } from './stored-watermarks.ts';
import { deadLetterMessage, deadLetterOf, type DeadLetter } from './dead-letter.ts';
import { decodeMessage, decodeMessageFast } from './decode.ts';
import { GroupCommitWriter } from './group-commit.ts';
import { STORE_RETRY, withRetry, type RetryPolicy } from './retry.ts';
import type { ConsumerHealth, IncomingBatch, IncomingMessage, Transport, TransportConsumer, TransportProducer } from './transport/transport.ts';

/** Where valid records go: the store (store-writer.ts), or anything with its contract. */
export interface RecordWriter {
  /**
   * Resolves when stored; throws a `retriable` error when the store is unavailable. `rows`, when
   * given, is the same records as NDJSON blocks of text (one or more lines each, same order),
   * which a writer may send as they are.
   */
  write(records: readonly TraceRecord[], rows?: readonly string[]): Promise<void>;
  /** Every stored version of the records in these ranges (for duplicate and conflict checks). */
  storedVersions(ranges: readonly NodeSeqRange[]): Promise<TraceRecord[]>;
  /** The highest stored node_seq of each node (absent: nothing stored). */
  storedMaxNodeSeq(nodes: readonly { runId: string; node: number }[]): Promise<{ runId: string; node: number; max: number }[]>;
  /** Stores declared gaps (idempotent on the gap id). */
  writeGaps(gaps: readonly GapRecord[]): Promise<void>;
  /** Stores metrics snapshots (idempotent on the snapshot id); `rows` are their JSON lines as received. */
  writeSnapshots(snapshots: readonly MetricsSnapshot[], rows: readonly string[]): Promise<void>;
}

export interface CollectorOptions {
  readonly transport: Transport;
  readonly writer: RecordWriter;
  readonly topic: string;
  readonly dlqTopic: string;
  readonly groupId: string;
  /** Most rows in one insert. */
  readonly batchRowsMax: number;
  /** Longest a partial insert waits for more rows from concurrently handled batches. */
  readonly flushIntervalMs?: number;
  readonly recordBytesMax: number;
  readonly logger: Logger;
  readonly retry?: RetryPolicy;
  /**
   * Group members this collector runs (default 1). With two, one member decodes its next batch
   * while the other's insert runs in the engine: the stages overlap instead of alternating.
   */
  readonly consumers?: number;
}

export interface CollectorStats {
  /** Records read, valid or not (redeliveries count again). */
  consumed: number;
  stored: number;
  deadLettered: number;
  /** Transport batches handled (and so committed). */
  batches: number;
  /** Inserts into the store. */
  inserts: number;
  storeRetries: number;
  lastInsertMs: number;
  /** Records skipped because the store (or the batch) already held them, identical. */
  duplicatesSkipped: number;
  /** Records whose event id was stored with other contents (dead-lettered as `conflict`). */
  conflicts: number;
  /** Inserts split to find the rows the store refused. */
  bisections: number;
  /** Gap records stored, and the trace records they account for. */
  gaps: number;
  gapRecords: number;
  /** Metrics snapshots stored. */
  snapshots: number;
}

/** Typed events; they cost nothing when nobody listens, and feed the Prometheus metrics. */
export interface CollectorEvents {
  batch_stored: [{ rows: number; insertMs: number }];
  /** `consumed`: records read (valid or not); a message may bundle several. */
  batch_handled: [{ topic: string; partition: number; messages: number; consumed: number; records: TraceRecord[] }];
  dead_lettered: [DeadLetter];
  store_retry: [{ attempt: number; delayMs: number; error: unknown }];
  gaps_stored: [GapRecord[]];
  snapshots_stored: [MetricsSnapshot[]];
}

type State = 'idle' | 'running' | 'stopping' | 'stopped';

export interface CollectorHealth {
  readonly state: State;
  readonly consumers: readonly ConsumerHealth[];
  /** While store calls fail: since when (wall clock, ms). */
  readonly storeUnavailableSinceMs?: number;
  /** Start of the oldest store call still waiting for an answer (a hung store shows here). */
  readonly storeCallWaitingSinceMs?: number;
}
const TRANSITIONS: Record<State, readonly State[]> = { idle: ['running', 'stopped'], running: ['stopping'], stopping: ['stopped'], stopped: [] };

export class Collector extends EventEmitter<CollectorEvents> {
  readonly stats: CollectorStats = { consumed: 0, stored: 0, deadLettered: 0, batches: 0, inserts: 0, storeRetries: 0, lastInsertMs: 0, duplicatesSkipped: 0, conflicts: 0, bisections: 0, gaps: 0, gapRecords: 0, snapshots: 0 };
  private state: State = 'idle';
  private readonly consumers: TransportConsumer[] = [];
  private dlqProducer: TransportProducer | undefined;
  private readonly groupCommit: GroupCommitWriter;
  /** Set by the first failed store call, cleared by the next success. */
  private storeUnavailableSinceMs: number | undefined;
  /** Start times of the store calls in flight. */
  private readonly storeCallsInFlight = new Set<{ readonly sinceMs: number }>();
  private readonly writer: RecordWriter;
  private readonly watermarks = new StoredWatermarks();

  constructor(private readonly options: CollectorOptions) {
    super();
    if (options.batchRowsMax < 1 || options.recordBytesMax < 1) throw new RangeError('batchRowsMax and recordBytesMax must be >= 1');
    this.writer = this.observed(options.writer);
    this.groupCommit = new GroupCommitWriter({
      writer: this.writer,
      rowsMax: options.batchRowsMax,
      flushIntervalMs: options.flushIntervalMs ?? 500,
      retry: options.retry ?? STORE_RETRY,
      shouldContinue: () => this.state === 'running',
      onRetry: (error, attempt, delayMs) => this.noteRetry(error, attempt, delayMs),
      onStored: (rows, insertMs) => {
        this.stats.stored += rows;
        this.stats.inserts++;
        this.stats.lastInsertMs = insertMs;
        this.emit('batch_stored', { rows, insertMs });
      },
    });
  }

  /** Where consumption stands, for readiness: every member's state and the store's. */
  health(): CollectorHealth {
    return {
      state: this.state,
      consumers: this.consumers.map((c) => c.health()),
      ...(this.storeUnavailableSinceMs !== undefined && { storeUnavailableSinceMs: this.storeUnavailableSinceMs }),
      ...(this.storeCallsInFlight.size > 0 && { storeCallWaitingSinceMs: Math.min(...[...this.storeCallsInFlight].map((c) => c.sinceMs)) }),
    };
  }

  /** The writer, with every call's time in flight recorded: a retriable failure starts an outage, a success ends it. */
  private observed(writer: RecordWriter): RecordWriter {
    const track = <T>(call: () => Promise<T>): Promise<T> => {
      const entry = { sinceMs: Date.now() };
      this.storeCallsInFlight.add(entry);
      return call().then(
        (value) => {
          this.storeCallsInFlight.delete(entry);
          this.storeUnavailableSinceMs = undefined;
          return value;
        },
        (error: unknown) => {
          this.storeCallsInFlight.delete(entry);
          if (isRetriable(error)) this.storeUnavailableSinceMs ??= Date.now();
          throw error;
        },
      );
    };
    return {
      write: (records, rows) => track(() => writer.write(records, rows)),
      storedVersions: (ranges) => track(() => writer.storedVersions(ranges)),
      storedMaxNodeSeq: (nodes) => track(() => writer.storedMaxNodeSeq(nodes)),
      writeGaps: (gaps) => track(() => writer.writeGaps(gaps)),
      writeSnapshots: (snapshots, rows) => track(() => writer.writeSnapshots(snapshots, rows)),
    };
  }

  get running(): boolean {
    return this.state === 'running';
  }

  get currentState(): State {
    return this.state;
  }

  async start(): Promise<void> {
    this.moveTo('running');
    const { transport, topic, dlqTopic, groupId } = this.options;
    this.dlqProducer = await transport.createProducer();
    const members = Math.max(1, this.options.consumers ?? 1);
    for (let i = 0; i < members; i++) this.consumers.push(await transport.createConsumer({ groupId, topics: [topic], fromBeginning: true }));
    this.options.logger.info('collector started', { topic, dlq_topic: dlqTopic, group_id: groupId, transport: transport.kind, consumers: members });
    // Together: a member that joins after another has started waits for that one's rebalance,
    // which waits for its batch in hand (with a backlog, a whole fetch) to finish.
    await Promise.all(this.consumers.map((consumer) => consumer.run((batch) => this.handleBatch(batch))));
  }

  /**
   * Graceful: stops consuming; a batch in hand finishes if the store takes it, otherwise it is
   * abandoned uncommitted (and redelivered to the group), then the group is left.
   */
  async stop(): Promise<void> {
    if (this.state === 'idle') {
      this.moveTo('stopped');
      return;
    }
    if (this.state !== 'running') return;
    this.moveTo('stopping');
    await Promise.all(this.consumers.map((c) => c.stop()));
    await this.dlqProducer?.close();
    this.moveTo('stopped');
    this.options.logger.info('collector stopped', { ...this.stats });
  }

  /** Exposed for tests and for the demo, which runs the same code on one batch at a time. */
  async handleBatch(batch: IncomingBatch): Promise<void> {
    this.groupCommit.enter();
    try {
      await this.handle(batch);
    } catch (error) {
      // Some of it may be stored by now, and it comes back: look before trusting anything here.
      this.watermarks.forget(slotOf(batch));
      throw error;
    } finally {
      this.groupCommit.leave();
    }
  }

  private async handle(batch: IncomingBatch): Promise<void> {
    const heartbeat = () => batch.heartbeat();
    const decoded = this.decodeBatch(batch);
    const dead = decoded.dead;
    const consumed = decoded.consumed;
    const slot = slotOf(batch);
    this.watermarks.follow(slot, batch.messages[0]?.offset ?? '0');
    const known = await withoutKnownRecords(slot, decoded.messages, this.watermarks, {
      maxima: (nodes) => this.storeRetrying(() => this.writer.storedMaxNodeSeq(nodes), heartbeat),
      versions: (ranges) => this.storeRetrying(() => this.writer.storedVersions(ranges), heartbeat),
    });
    this.stats.duplicatesSkipped += known.duplicates;
    this.stats.conflicts += known.conflicts.length;
    for (const letter of known.conflicts) dead.push(letter);
    const fresh = known.kept;

    // Chunks of at most batchRowsMax records for group commit; a message's block stays whole.
    const step = this.options.batchRowsMax;
    const chunks: { entries: Entry[]; records: TraceRecord[]; rows: string[] }[] = [];
    let current: (typeof chunks)[number] = { entries: [], records: [], rows: [] };
    const close = () => {
      if (current.records.length > 0) chunks.push(current);
      current = { entries: [], records: [], rows: [] };
    };
    for (const unit of fresh) {
      if (unit.block !== undefined && unit.entries.length <= step) {
        if (current.records.length + unit.entries.length > step) close();
        for (const entry of unit.entries) {
          current.entries.push(entry);
          current.records.push(entry.record);
        }
        current.rows.push(unit.block);
        continue;
      }
      for (const entry of unit.entries) {
        if (current.records.length === step) close();
        current.entries.push(entry);
        current.records.push(entry.record);
        current.rows.push(entry.row ?? canonicalRecordJson(entry.record));
      }
    }
    close();
    const results = await this.groupCommit.write(chunks, heartbeat);
    const all: TraceRecord[] = [];
    for (const [i, result] of results.entries()) {
      const chunk = chunks[i]!;
      if (result.status === 'fulfilled') {
        for (const r of chunk.records) all.push(r);
        continue;
      }
      const error = result.reason as unknown;
      // Unavailable (and shutting down): rethrow, so the batch stays uncommitted and is redelivered.
      if (!(error instanceof LatticeError) || error.retriable) throw error;
      // The store refused some rows of this chunk: find which, so the rest are stored.
      const rejected = await insertBisecting(chunk.entries, (entries) => this.storeRetrying(() => this.writer.write(entries.map((e) => e.record)), heartbeat), () => this.stats.bisections++);
      const bad = new Set(rejected.map((r) => r.item));
      for (const entry of chunk.entries) if (!bad.has(entry)) all.push(entry.record);
      this.stats.stored += chunk.entries.length - bad.size;
      if (rejected.length > 0) this.options.logger.error('store rejected rows; dead-lettering only those', { rows: rejected.length, of: chunk.entries.length, error: rejected[0]!.error });
      for (const { item, error: cause } of rejected) dead.push(deadLetterOf(item.message, 'store_rejected', [storeErrorDetail(cause)], { index: item.index, value: bytesOf(item) }));
    }
    await this.storeGaps(decoded.gaps, dead, heartbeat);
    await this.storeSnapshots(decoded.snapshots, dead, heartbeat);
    if (dead.length > 0) await this.deadLetter(dead);
    const maxByKey = new Map<string, number>();
    for (const unit of decoded.messages) {
      for (const { record } of unit.entries) {
        const key = nodeKeyOf(record.run_id, record.node);
        if (record.node_seq > (maxByKey.get(key) ?? -1)) maxByKey.set(key, record.node_seq);
      }
    }
    const last = batch.messages.at(-1);
    if (last !== undefined) this.watermarks.handled(slot, last.offset, maxByKey);
    this.stats.consumed += consumed;
    this.stats.batches++;
    this.emit('batch_handled', { topic: batch.topic, partition: batch.partition, messages: batch.messages.length, consumed, records: all });
  }

  /** Messages → records (with where each came from), gaps and dead letters. */
  private decodeBatch(batch: IncomingBatch): { messages: Unit[]; gaps: GapEntry[]; snapshots: SnapshotEntry[]; dead: DeadLetter[]; consumed: number } {
    const messages: Unit[] = [];
    const gaps: GapEntry[] = [];
    const snapshots: SnapshotEntry[] = [];
    const dead: DeadLetter[] = [];
    let consumed = 0;
    for (const message of batch.messages) {
      const fast = decodeMessageFast(message.value, this.options.recordBytesMax);
      if (fast !== undefined) {
        consumed += fast.records.length + fast.snapshots.length;
        const indexes = fast.recordIndexes;
        if (fast.records.length > 0) messages.push({ message, block: fast.block, entries: fast.records.map((record, i) => ({ record, message, index: indexes?.[i] ?? i, bytes: undefined, row: undefined })) });
        for (const s of fast.snapshots) snapshots.push({ snapshot: s.snapshot, row: s.row, message, index: s.index, bytes: undefined });
        continue;
      }
      const entries: Entry[] = [];
      for (const line of decodeMessage(message.value, this.options.recordBytesMax)) {
        consumed++;
        if (!line.ok) dead.push(deadLetterOf(message, line.reason, line.errors, { index: line.index, value: line.bytes }));
        else if (line.kind === 'gap') gaps.push({ gap: line.gap, message, index: line.index, bytes: line.bytes });
        else if (line.kind === 'snapshot') snapshots.push({ snapshot: line.snapshot, row: line.row, message, index: line.index, bytes: line.bytes });
        else entries.push({ record: line.record, message, index: line.index, bytes: line.bytes, row: line.row.toString('utf8') });
      }
      if (entries.length > 0) messages.push({ message, block: undefined, entries });
    }
    return { messages, gaps, snapshots, dead, consumed };
  }

  private async storeGaps(gaps: readonly GapEntry[], dead: DeadLetter[], heartbeat: () => Promise<void>): Promise<void> {
    if (gaps.length === 0) return;
    const rejected = await insertBisecting(gaps, (some) => this.storeRetrying(() => this.writer.writeGaps(some.map((g) => g.gap)), heartbeat));
    const bad = new Set(rejected.map((r) => r.item));
    for (const { item, error } of rejected) dead.push(deadLetterOf(item.message, 'store_rejected', [storeErrorDetail(error)], { index: item.index, value: item.bytes }));
    const storedGaps = gaps.filter((g) => !bad.has(g));
    this.stats.gaps += storedGaps.length;
    this.stats.gapRecords += storedGaps.reduce((sum, g) => sum + g.gap.records, 0);
    if (storedGaps.length > 0) this.emit('gaps_stored', storedGaps.map((g) => g.gap));
  }

  private async storeSnapshots(snapshots: readonly SnapshotEntry[], dead: DeadLetter[], heartbeat: () => Promise<void>): Promise<void> {
    if (snapshots.length === 0) return;
    const rejected = await insertBisecting(snapshots, (some) =>
      this.storeRetrying(
        () =>
          this.writer.writeSnapshots(
            some.map((s) => s.snapshot),
            some.map((s) => s.row),
          ),
        heartbeat,
      ),
    );
    const bad = new Set(rejected.map((r) => r.item));
    for (const { item, error } of rejected) dead.push(deadLetterOf(item.message, 'store_rejected', [storeErrorDetail(error)], { index: item.index, value: item.bytes ?? Buffer.from(item.row) }));
    const stored = snapshots.filter((s) => !bad.has(s));
    this.stats.snapshots += stored.length;
    if (stored.length > 0) this.emit('snapshots_stored', stored.map((s) => s.snapshot));
  }

  /** Every retried store call, inserts and look-ups alike, counts and logs here. */
  private noteRetry(error: unknown, attempt: number, delayMs: number): void {
    this.stats.storeRetries++;
    this.emit('store_retry', { attempt, delayMs, error });
    if (attempt === 1 || attempt % 10 === 0) this.options.logger.warn('store unavailable, retrying', { attempt, delay_ms: delayMs, error });
  }

  /** One store call, retried with backoff while the store is unavailable (and heartbeating). */
  private storeRetrying<T>(operation: () => Promise<T>, heartbeat: () => Promise<void>): Promise<T> {
    return withRetry(operation, this.options.retry ?? STORE_RETRY, {
      random: Math.random,
      sleep: (ms) => sleep(ms),
      shouldContinue: () => this.state === 'running',
      onRetry: async (error, attempt, delayMs) => {
        this.noteRetry(error, attempt, delayMs);
        await heartbeat().catch(() => undefined);
      },
    });
  }

  private async deadLetter(letters: DeadLetter[]): Promise<void> {
    const producer = this.dlqProducer;
    if (!producer) throw new LatticeError('TRANSPORT_FAILED', 'collector is not started: no dead-letter producer');
    await producer.send(
      this.options.dlqTopic,
      letters.map(deadLetterMessage),
    );
    this.stats.deadLettered += letters.length;
    for (const letter of letters) this.emit('dead_lettered', letter);
  }

  private moveTo(next: State): void {
    if (!TRANSITIONS[this.state].includes(next)) throw new LatticeError('TRANSPORT_FAILED', `collector cannot go from ${this.state} to ${next}`);
    this.state = next;
  }
}

interface GapEntry {
  readonly gap: GapRecord;
  readonly message: IncomingMessage;
  readonly index: number;
  readonly bytes: Buffer;
}

interface SnapshotEntry {
  readonly snapshot: MetricsSnapshot;
  /** Its JSON line as received: what the store is given. */
  readonly row: string;
  readonly message: IncomingMessage;
  readonly index: number;
  /** Its exact bytes, when decoded on the slow path (else the row is them). */
  readonly bytes: Buffer | undefined;
}

const slotOf = (batch: IncomingBatch) => `${batch.topic}:${batch.partition}`;

function storeErrorDetail(error: LatticeError): { path: string; message: string } {
  const backend = (error as { backendCode?: unknown }).backendCode;
  return { path: '', message: backend === undefined ? error.message : `${error.message} [store code ${String(backend)}]` };
}
