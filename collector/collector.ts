/**
 * The collector: consumes trace records, validates them, writes them to the store and only then
 * lets the transport commit the offsets (at-least-once; the store's idempotent table makes the
 * redelivered duplicates disappear). Malformed records go to the dead-letter topic with the
 * reason and their source offset, in the same batch, before the commit: nothing is dropped
 * without a trace. While the store is down the batch is retried with backoff, which also holds
 * back consumption of that partition (no unbounded buffering, no reordering within a node).
 */
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { LatticeError } from '../core/errors.ts';
import type { Logger } from '../core/logging.ts';
import type { TraceRecord } from '../core/trace-schema.ts';
import { deadLetterOf, decodeRecord, type DeadLetter } from './decode.ts';
import { STORE_RETRY, withRetry, type RetryPolicy } from './retry.ts';
import type { IncomingBatch, Transport, TransportConsumer, TransportProducer } from './transport/transport.ts';

/** Where valid records go: the store's `insertTransitions`, or anything with its contract. */
export interface RecordWriter {
  /** Resolves when stored; throws a `retriable` error when the store is unavailable. */
  write(records: readonly TraceRecord[]): Promise<void>;
}

export interface CollectorOptions {
  readonly transport: Transport;
  readonly writer: RecordWriter;
  readonly topic: string;
  readonly dlqTopic: string;
  readonly groupId: string;
  readonly batchRowsMax: number;
  readonly recordBytesMax: number;
  readonly logger: Logger;
  readonly retry?: RetryPolicy;
}

export interface CollectorStats {
  consumed: number;
  stored: number;
  deadLettered: number;
  batches: number;
  storeRetries: number;
  lastInsertMs: number;
}

/** Typed events; they cost nothing when nobody listens, and feed the Prometheus metrics. */
export interface CollectorEvents {
  batch_stored: [{ partition: number; rows: number; insertMs: number }];
  dead_lettered: [DeadLetter];
  store_retry: [{ attempt: number; delayMs: number; error: unknown }];
}

type State = 'idle' | 'running' | 'stopping' | 'stopped';
const TRANSITIONS: Record<State, readonly State[]> = { idle: ['running', 'stopped'], running: ['stopping'], stopping: ['stopped'], stopped: [] };

export class Collector extends EventEmitter<CollectorEvents> {
  readonly stats: CollectorStats = { consumed: 0, stored: 0, deadLettered: 0, batches: 0, storeRetries: 0, lastInsertMs: 0 };
  private state: State = 'idle';
  private consumer: TransportConsumer | undefined;
  private dlqProducer: TransportProducer | undefined;

  constructor(private readonly options: CollectorOptions) {
    super();
  }

  get running(): boolean {
    return this.state === 'running';
  }

  async start(): Promise<void> {
    this.moveTo('running');
    const { transport, topic, dlqTopic, groupId } = this.options;
    this.dlqProducer = await transport.createProducer();
    this.consumer = await transport.createConsumer({ groupId, topics: [topic], fromBeginning: true });
    this.options.logger.info('collector started', { topic, dlq_topic: dlqTopic, group_id: groupId, transport: transport.kind });
    await this.consumer.run((batch) => this.handleBatch(batch));
  }

  /** Graceful: the batch in hand finishes (or is left uncommitted), then the group is left. */
  async stop(): Promise<void> {
    if (this.state === 'idle') {
      this.moveTo('stopped');
      return;
    }
    if (this.state !== 'running') return;
    this.moveTo('stopping');
    await this.consumer?.stop();
    await this.dlqProducer?.close();
    this.moveTo('stopped');
    this.options.logger.info('collector stopped', { ...this.stats });
  }

  /** Exposed for tests and for the demo, which runs the same code on one batch at a time. */
  async handleBatch(batch: IncomingBatch): Promise<void> {
    const good: TraceRecord[] = [];
    const dead: DeadLetter[] = [];
    for (const message of batch.messages) {
      const decoded = decodeRecord(message.value, this.options.recordBytesMax);
      if (decoded.ok) good.push(decoded.record);
      else dead.push(deadLetterOf(message, decoded.reason, decoded.errors));
    }
    for (let start = 0; start < good.length; start += this.options.batchRowsMax) {
      await this.store(good.slice(start, start + this.options.batchRowsMax), batch);
    }
    if (dead.length > 0) await this.deadLetter(dead);
    this.stats.consumed += batch.messages.length;
    this.stats.batches++;
  }

  private async store(records: TraceRecord[], batch: IncomingBatch): Promise<void> {
    const started = performance.now();
    try {
      await withRetry(() => this.options.writer.write(records), this.options.retry ?? STORE_RETRY, {
        random: Math.random,
        sleep: (ms) => sleep(ms),
        shouldContinue: () => this.state === 'running',
        onRetry: async (error, attempt, delayMs) => {
          this.stats.storeRetries++;
          this.emit('store_retry', { attempt, delayMs, error });
          if (attempt === 1 || attempt % 10 === 0) this.options.logger.warn('store unavailable, retrying batch', { attempt, delay_ms: delayMs, partition: batch.partition, error });
          await batch.heartbeat();
        },
      });
    } catch (error) {
      // Unavailable and shutting down: rethrow, so the batch stays uncommitted and is redelivered.
      if (!(error instanceof LatticeError) || error.retriable) throw error;
      return this.rejectedByStore(records, batch, error);
    }
    const insertMs = performance.now() - started;
    this.stats.stored += records.length;
    this.stats.lastInsertMs = insertMs;
    this.emit('batch_stored', { partition: batch.partition, rows: records.length, insertMs });
  }

  /** The store refused the rows themselves (not its availability): account for them in the DLQ. */
  private async rejectedByStore(records: TraceRecord[], batch: IncomingBatch, error: LatticeError): Promise<void> {
    this.options.logger.error('store rejected a batch; dead-lettering its records', { rows: records.length, error });
    const rejected = new Set(records.map((r) => r.event_id));
    const dead = batch.messages
      .filter((m) => {
        const decoded = decodeRecord(m.value, this.options.recordBytesMax);
        return decoded.ok && rejected.has(decoded.record.event_id);
      })
      .map((m) => deadLetterOf(m, 'store_rejected', [{ path: '', message: error.message }]));
    await this.deadLetter(dead);
  }

  private async deadLetter(letters: DeadLetter[]): Promise<void> {
    const producer = this.dlqProducer;
    if (!producer) throw new Error('collector is not started');
    await producer.send(
      this.options.dlqTopic,
      letters.map((letter) => ({ key: letter.source.key, value: JSON.stringify(letter) })),
    );
    this.stats.deadLettered += letters.length;
    for (const letter of letters) this.emit('dead_lettered', letter);
  }

  private moveTo(next: State): void {
    if (!TRANSITIONS[this.state].includes(next)) throw new Error(`collector cannot go from ${this.state} to ${next}`);
    this.state = next;
  }
}
