/**
 * The collector: consumes trace records, validates them, writes them to the store and only then
 * lets the transport commit the offsets (at-least-once; the store's idempotent table makes the
 * redelivered duplicates disappear). Malformed records go to the dead-letter topic with the
 * reason and their source offset, in the same batch, before the commit: nothing is dropped
 * without a trace. Batches handed over concurrently (one per partition) are stored together by
 * group commit (group-commit.ts), in inserts bounded by rows and by time. While the store is down
 * the insert is retried with backoff and no batch returns, which holds back consumption (no
 * unbounded buffering, no reordering within a node: one node is one partition, handled in order).
 */
import { EventEmitter } from 'node:events';
import { LatticeError } from '../core/errors.ts';
import type { Logger } from '../core/logging.ts';
import type { TraceRecord } from '../core/trace-schema.ts';
import { deadLetterMessage, deadLetterOf, type DeadLetter } from './dead-letter.ts';
import { decodeMessage, decodeMessageFast } from './decode.ts';
import { GroupCommitWriter } from './group-commit.ts';
import { STORE_RETRY, type RetryPolicy } from './retry.ts';
import type { IncomingBatch, IncomingMessage, Transport, TransportConsumer, TransportProducer } from './transport/transport.ts';

/** Where valid records go: the store (store-writer.ts), or anything with its contract. */
export interface RecordWriter {
  /**
   * Resolves when stored; throws a `retriable` error when the store is unavailable. `rows`, when
   * given, is the same records as NDJSON blocks of text (one or more lines each, same order),
   * which a writer may send as they are.
   */
  write(records: readonly TraceRecord[], rows?: readonly string[]): Promise<void>;
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
}

/** Typed events; they cost nothing when nobody listens, and feed the Prometheus metrics. */
export interface CollectorEvents {
  batch_stored: [{ rows: number; insertMs: number }];
  /** `consumed`: records read (valid or not); a message may bundle several. */
  batch_handled: [{ topic: string; partition: number; messages: number; consumed: number; records: TraceRecord[] }];
  dead_lettered: [DeadLetter];
  store_retry: [{ attempt: number; delayMs: number; error: unknown }];
}

type State = 'idle' | 'running' | 'stopping' | 'stopped';
const TRANSITIONS: Record<State, readonly State[]> = { idle: ['running', 'stopped'], running: ['stopping'], stopping: ['stopped'], stopped: [] };

export class Collector extends EventEmitter<CollectorEvents> {
  readonly stats: CollectorStats = { consumed: 0, stored: 0, deadLettered: 0, batches: 0, inserts: 0, storeRetries: 0, lastInsertMs: 0 };
  private state: State = 'idle';
  private readonly consumers: TransportConsumer[] = [];
  private dlqProducer: TransportProducer | undefined;
  private readonly groupCommit: GroupCommitWriter;

  constructor(private readonly options: CollectorOptions) {
    super();
    if (options.batchRowsMax < 1 || options.recordBytesMax < 1) throw new RangeError('batchRowsMax and recordBytesMax must be >= 1');
    this.groupCommit = new GroupCommitWriter({
      writer: options.writer,
      rowsMax: options.batchRowsMax,
      flushIntervalMs: options.flushIntervalMs ?? 500,
      retry: options.retry ?? STORE_RETRY,
      shouldContinue: () => this.state === 'running',
      onRetry: (error, attempt, delayMs) => {
        this.stats.storeRetries++;
        this.emit('store_retry', { attempt, delayMs, error });
        if (attempt === 1 || attempt % 10 === 0) this.options.logger.warn('store unavailable, retrying insert', { attempt, delay_ms: delayMs, error });
      },
      onStored: (rows, insertMs) => {
        this.stats.stored += rows;
        this.stats.inserts++;
        this.stats.lastInsertMs = insertMs;
        this.emit('batch_stored', { rows, insertMs });
      },
    });
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
    for (const consumer of this.consumers) await consumer.run((batch) => this.handleBatch(batch));
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
    } finally {
      this.groupCommit.leave();
    }
  }

  private async handle(batch: IncomingBatch): Promise<void> {
    const step = this.options.batchRowsMax;
    const all: TraceRecord[] = [];
    // Where each stored record came from (message, line), as parallel arrays: one entry per record.
    const fromMessage: IncomingMessage[] = [];
    const fromLine: number[] = [];
    const chunkStarts: number[] = [];
    const dead: DeadLetter[] = [];
    const stored: Promise<void>[] = [];
    let records: TraceRecord[] = [];
    let rows: string[] = [];
    let consumed = 0;
    const heartbeat = () => batch.heartbeat();
    const submit = async () => {
      chunkStarts.push(all.length - records.length);
      stored.push(this.groupCommit.submit({ records, rows }, heartbeat));
      records = [];
      rows = [];
      // Let the insert start in the engine while the rest of the batch is decoded.
      await yieldToEventLoop();
    };
    const take = (record: TraceRecord, message: IncomingMessage, line: number) => {
      records.push(record);
      all.push(record);
      fromMessage.push(message);
      fromLine.push(line);
    };
    for (const message of batch.messages) {
      const fast = decodeMessageFast(message.value, this.options.recordBytesMax);
      if (fast !== undefined && fast.records.length <= step) {
        // The message's NDJSON goes to the store as one block, so it must fit in one chunk.
        if (records.length + fast.records.length > step) await submit();
        consumed += fast.records.length;
        for (const [line, record] of fast.records.entries()) take(record, message, line);
        rows.push(fast.block);
        if (records.length === step) await submit();
        continue;
      }
      for (const decoded of decodeMessage(message.value, this.options.recordBytesMax)) {
        consumed++;
        if (!decoded.ok) {
          dead.push(deadLetterOf(message, decoded.reason, decoded.errors, { index: decoded.index, value: decoded.bytes }));
          continue;
        }
        if (decoded.kind === 'gap') throw new LatticeError('TRANSPORT_FAILED', 'gap records are not stored yet');
        take(decoded.record, message, decoded.index);
        rows.push(decoded.row.toString('utf8'));
        if (records.length === step) await submit();
      }
    }
    if (records.length > 0) {
      chunkStarts.push(all.length - records.length);
      stored.push(this.groupCommit.submit({ records, rows }, heartbeat));
    }
    const results = await this.groupCommit.settle(stored);
    for (const [i, result] of results.entries()) {
      if (result.status === 'fulfilled') continue;
      const error = result.reason as unknown;
      // Unavailable (and shutting down): rethrow, so the batch stays uncommitted and is redelivered.
      if (!(error instanceof LatticeError) || error.retriable) throw error;
      const from = chunkStarts[i]!;
      const to = chunkStarts[i + 1] ?? all.length;
      this.options.logger.error('store rejected rows; dead-lettering them', { rows: to - from, error });
      for (let r = from; r < to; r++) {
        const message = fromMessage[r]!;
        const line = decodeMessage(message.value, Number.POSITIVE_INFINITY)[fromLine[r]!];
        dead.push(deadLetterOf(message, 'store_rejected', [{ path: '', message: error.message }], { index: fromLine[r]!, value: line?.bytes ?? message.value }));
      }
    }
    if (dead.length > 0) await this.deadLetter(dead);
    this.stats.consumed += consumed;
    this.stats.batches++;
    this.emit('batch_handled', { topic: batch.topic, partition: batch.partition, messages: batch.messages.length, consumed, records: all });
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

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));
