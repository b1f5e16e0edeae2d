/**
 * The Kafka transport (kafkajs). Producers are idempotent (one in-flight request, so per-key
 * order survives retries) and compress with gzip; consumers commit offsets by hand, only after
 * the batch handler resolved, which is what makes the pipeline at-least-once.
 */
import { promisify } from 'node:util';
import { constants as zlibConstants, gzip, unzip } from 'node:zlib';
import kafkajs, { CompressionTypes, Kafka, logLevel, type Consumer, type IHeaders, type Producer } from 'kafkajs';
import { TransportError } from '../../core/errors.ts';
import type { Logger } from '../../core/logging.ts';
import type { ConsumerHealth, ConsumerOptions, IncomingBatch, IncomingMessage, TopicSpec, Transport, TransportConsumer, TransportProducer } from './transport.ts';

const gzipFast = promisify(gzip);
const unzipAsync = promisify(unzip);

// kafkajs compresses at zlib's default level 6, which on trace NDJSON costs about 3.5 times the
// CPU of level 1 (measured on 106 MB of records: 573 vs 159 ms, gunzip 214 vs 83 ms) for a ratio
// that stays above 35:1 (57:1 at level 6). The bytes are plain gzip either way.
// (Through the default export: Node does not see CompressionCodecs among kafkajs's named exports.)
kafkajs.CompressionCodecs[CompressionTypes.GZIP] = () => ({
  compress: (encoder: { buffer: Buffer }) => gzipFast(encoder.buffer, { level: zlibConstants.Z_BEST_SPEED }),
  decompress: (buffer: Buffer) => unzipAsync(buffer),
});

export interface KafkaTransportOptions {
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly logger?: Logger;
  /** How long a producer keeps retrying through a broker outage before `send` fails. */
  readonly producerRetryMs?: number;
  /** Fail fast when the broker is not there at all (tests, `lattice collect` start-up). */
  readonly connectionTimeoutMs?: number;
  /** Producer batch compression. gzip (level 1, see above) by default (kafkajs has no other built-in codec). */
  readonly compression?: 'gzip' | 'none';
  /** Consumer fetch bounds: most bytes per partition per fetch, and how long the broker may wait for `fetchMinBytes`. */
  readonly fetchMaxBytesPerPartition?: number;
  readonly fetchMinBytes?: number;
  readonly fetchMaxWaitMs?: number;
  /** Partitions whose batches are handled at once (the collector stores them in one insert). */
  readonly partitionsConsumedConcurrently?: number;
  /** Longest wait before a crashed consumer is rebuilt (the backoff doubles up to it). */
  readonly consumerRestartMaxMs?: number;
  /** max.message.bytes of the topics `ensureTopics` creates (default 16 MiB). */
  readonly topicMaxMessageBytes?: number;
}

export class KafkaTransport implements Transport {
  readonly kind = 'kafka' as const;
  private readonly kafka: Kafka;
  private readonly open = new Set<{ disconnect(): Promise<void> }>();

  constructor(private readonly options: KafkaTransportOptions) {
    // kafkajs prints a notice about its default partitioner on every producer otherwise.
    process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= '1';
    const log = options.logger;
    this.kafka = new Kafka({
      clientId: options.clientId,
      brokers: [...options.brokers],
      connectionTimeout: options.connectionTimeoutMs ?? 3_000,
      logLevel: logLevel.WARN,
      logCreator: () => (entry) => {
        if (!log) return;
        const fields = { kafka: entry.namespace, ...entry.log };
        if (entry.level <= logLevel.ERROR) log.warn(entry.log.message, fields);
        else log.debug(entry.log.message, fields);
      },
    });
  }

  async ensureTopics(topics: readonly TopicSpec[]): Promise<void> {
    const admin = this.kafka.admin();
    try {
      await admin.connect();
      const existing = new Set(await admin.listTopics());
      const missing = topics.filter((t) => !existing.has(t.name));
      if (missing.length > 0) {
        // Producers bundle records and send large batches; allow them (the broker default is 1 MiB).
        const configEntries = [{ name: 'max.message.bytes', value: String(this.options.topicMaxMessageBytes ?? 16 * 1024 * 1024) }];
        await admin.createTopics({ waitForLeaders: true, topics: missing.map((t) => ({ topic: t.name, numPartitions: t.partitions, replicationFactor: 1, configEntries })) });
      }
    } catch (cause) {
      throw unavailable(this.options.brokers, 'create topics', cause);
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }

  async createProducer(): Promise<TransportProducer> {
    const retryMs = this.options.producerRetryMs ?? 30_000;
    const producer: Producer = this.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      retry: { retries: Math.max(5, Math.ceil(retryMs / 1_000)), maxRetryTime: retryMs, initialRetryTime: 200 },
    });
    try {
      await producer.connect();
    } catch (cause) {
      throw unavailable(this.options.brokers, 'connect a producer', cause);
    }
    this.open.add(producer);
    return {
      send: async (topic, messages) => {
        try {
          await producer.send({ topic, compression: this.options.compression === 'none' ? CompressionTypes.None : CompressionTypes.GZIP, messages: messages.map((m) => (m.headers === undefined ? { key: m.key, value: m.value } : { key: m.key, value: m.value, headers: { ...m.headers } })) });
        } catch (cause) {
          throw new TransportError('TRANSPORT_FAILED', `send to ${topic} failed: ${(cause as Error).message}`, { retriable: !isPermanentSendError(cause), cause });
        }
      },
      close: async () => {
        this.open.delete(producer);
        await producer.disconnect();
      },
    };
  }

  /**
   * A consumer under supervision. kafkajs restarts itself after retriable failures, but a
   * non-retriable one (a commit after the group moved on: "The coordinator is not aware of this
   * member") ends it for good while the process stays up. Here a crash kafkajs will not recover
   * from is followed, after a capped exponential backoff, by a new consumer that rejoins the
   * group, forever until `stop`. While a handler runs, membership is kept alive by a heartbeat
   * of its own, so a slow store does not make the group evict the member mid-batch.
   */
  async createConsumer(options: ConsumerOptions): Promise<TransportConsumer> {
    const supervisor = new SupervisedConsumer(() => this.connectConsumer(options), options, this.options.logger, this.options.consumerRestartMaxMs ?? 10_000, this.options.partitionsConsumedConcurrently ?? 1);
    await supervisor.connectFirst();
    this.open.add(supervisor);
    return {
      run: (onBatch) => supervisor.run(onBatch),
      stop: async () => {
        this.open.delete(supervisor);
        await supervisor.disconnect();
      },
      health: () => supervisor.health(),
    };
  }

  private async connectConsumer(options: ConsumerOptions): Promise<Consumer> {
    const consumer: Consumer = this.kafka.consumer({
      groupId: options.groupId,
      sessionTimeout: 10_000,
      heartbeatInterval: HEARTBEAT_INTERVAL_MS,
      retry: { retries: 10 },
      maxBytesPerPartition: this.options.fetchMaxBytesPerPartition ?? 4 * 1024 * 1024,
      maxBytes: 4 * (this.options.fetchMaxBytesPerPartition ?? 4 * 1024 * 1024),
      minBytes: this.options.fetchMinBytes ?? 1,
      maxWaitTimeInMs: this.options.fetchMaxWaitMs ?? 500,
    });
    try {
      await consumer.connect();
      for (const topic of options.topics) await consumer.subscribe({ topic, fromBeginning: options.fromBeginning });
    } catch (cause) {
      await consumer.disconnect().catch(() => undefined);
      throw unavailable(this.options.brokers, `join consumer group ${options.groupId}`, cause);
    }
    return consumer;
  }

  /**
   * kafkajs has no fetch without a group, so a throwaway group reads from the beginning up to
   * the end offsets seen at the start, and is deleted afterwards.
   */
  async readTopic(topic: string, options: { messagesMax: number }): Promise<IncomingMessage[]> {
    const admin = this.kafka.admin();
    const groupId = `lattice-read-${topic}-${process.pid}-${Date.now()}`;
    let ends: Map<number, bigint>;
    try {
      await admin.connect();
      const offsets = await admin.fetchTopicOffsets(topic);
      ends = new Map(offsets.filter((o) => BigInt(o.high) > BigInt(o.low)).map((o) => [o.partition, BigInt(o.high)]));
    } catch (cause) {
      await admin.disconnect().catch(() => undefined);
      throw unavailable(this.options.brokers, `read the offsets of ${topic}`, cause);
    }
    const out: IncomingMessage[] = [];
    try {
      if (ends.size === 0) return out;
      const consumer = this.kafka.consumer({ groupId, sessionTimeout: 10_000, heartbeatInterval: HEARTBEAT_INTERVAL_MS });
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      const remaining = new Set(ends.keys());
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`partitions ${[...remaining].join(', ')} not read to their end within ${READ_TOPIC_TIMEOUT_MS} ms`)), READ_TOPIC_TIMEOUT_MS);
        const done = () => {
          clearTimeout(timer);
          resolve();
        };
        consumer.on(consumer.events.CRASH, (event) => {
          clearTimeout(timer);
          reject(event.payload.error);
        });
        void consumer
          .run({
            eachBatch: async ({ batch }) => {
              const end = ends.get(batch.partition);
              if (end === undefined) return;
              for (const m of batch.messages) {
                if (BigInt(m.offset) >= end || out.length >= options.messagesMax) break;
                out.push({ topic, partition: batch.partition, offset: m.offset, key: m.key?.toString() ?? null, value: m.value ?? Buffer.alloc(0), headers: headersOf(m.headers) });
              }
              if (BigInt(batch.lastOffset()) + 1n >= end) remaining.delete(batch.partition);
              if (remaining.size === 0 || out.length >= options.messagesMax) done();
            },
          })
          .catch(reject);
      });
      await consumer.disconnect();
      await admin.deleteGroups([groupId]).catch(() => undefined);
      return out.sort((a, b) => a.partition - b.partition || Number(BigInt(a.offset) - BigInt(b.offset)));
    } catch (cause) {
      throw unavailable(this.options.brokers, `read ${topic}`, cause);
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }

  async lag(groupId: string, topic: string): Promise<number> {
    const admin = this.kafka.admin();
    try {
      await admin.connect();
      const ends = await admin.fetchTopicOffsets(topic);
      const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
      const byPartition = new Map((committed?.partitions ?? []).map((p) => [p.partition, BigInt(p.offset)]));
      let total = 0n;
      for (const end of ends) {
        const done = byPartition.get(end.partition) ?? -1n;
        const start = done < 0n ? BigInt(end.low) : done;
        total += BigInt(end.high) - start;
      }
      return Number(total);
    } catch (cause) {
      throw unavailable(this.options.brokers, 'read consumer lag', cause);
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    for (const client of [...this.open]) await client.disconnect().catch(() => undefined);
    this.open.clear();
  }
}

const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

/** kafkajs hands headers over as Buffers (or arrays of them, for a repeated name): the first, as UTF-8. */
function headersOf(raw: IHeaders | undefined): Readonly<Record<string, string>> {
  if (raw === undefined) return NO_HEADERS;
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw)) {
    const first = Array.isArray(value) ? value[0] : value;
    if (first !== undefined) out[name] = first.toString();
  }
  return out;
}

const HEARTBEAT_INTERVAL_MS = 1_000;
/** A topic read for inspection gives up after this long (a broker that stopped answering). */
const READ_TOPIC_TIMEOUT_MS = 30_000;

/** Errors that mean "this member no longer owns the batch": the group moved on without it. */
const MEMBERSHIP_ERRORS: ReadonlySet<string> = new Set(['REBALANCE_IN_PROGRESS', 'NOT_COORDINATOR_FOR_GROUP', 'ILLEGAL_GENERATION', 'UNKNOWN_MEMBER_ID', 'FENCED_INSTANCE_ID']);

function isMembershipError(error: unknown): boolean {
  return typeof error === 'object' && error !== null && MEMBERSHIP_ERRORS.has(String((error as { type?: unknown }).type));
}

type SupervisorState = 'idle' | 'running' | 'restarting' | 'stopped';

class SupervisedConsumer {
  private consumer: Consumer | undefined;
  private state: SupervisorState = 'idle';
  private restarts = 0;
  private crashes = 0;
  private lastError: string | undefined;
  private lastBatchAtMs: number | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private onBatch: ((batch: IncomingBatch) => Promise<void>) | undefined;

  constructor(
    private readonly connect: () => Promise<Consumer>,
    private readonly options: ConsumerOptions,
    private readonly logger: Logger | undefined,
    private readonly restartMaxMs: number,
    private readonly concurrency: number,
  ) {}

  async connectFirst(): Promise<void> {
    this.consumer = await this.connect();
  }

  health(): ConsumerHealth {
    return { state: this.state === 'idle' ? 'starting' : this.state, restarts: this.restarts, crashes: this.crashes, ...(this.lastError !== undefined && { lastError: this.lastError }), ...(this.lastBatchAtMs !== undefined && { lastBatchAtMs: this.lastBatchAtMs }) };
  }

  async run(onBatch: (batch: IncomingBatch) => Promise<void>): Promise<void> {
    if (this.onBatch !== undefined) throw new TransportError('TRANSPORT_FAILED', 'consumer is already running');
    this.onBatch = onBatch;
    await this.runCurrent();
  }

  private async runCurrent(): Promise<void> {
    const consumer = this.consumer;
    const onBatch = this.onBatch;
    if (consumer === undefined || onBatch === undefined || this.state === 'stopped') return;
    consumer.on(consumer.events.CRASH, (event) => {
      this.crashes++;
      this.lastError = (event.payload.error as Error).message;
      this.logger?.warn('Kafka consumer crashed', { group_id: this.options.groupId, error: this.lastError, kafkajs_restarts: event.payload.restart });
      // kafkajs restarts after retriable failures itself; the rest is ours to recover.
      if (!event.payload.restart) this.scheduleRestart();
    });
    this.state = 'running';
    await consumer.run({
      autoCommit: false,
      partitionsConsumedConcurrently: this.concurrency,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, heartbeat, isRunning, isStale, resolveOffset }) => {
        if (!isRunning() || isStale() || batch.messages.length === 0) return;
        const keepAlive = setInterval(() => void heartbeat().catch(() => undefined), HEARTBEAT_INTERVAL_MS);
        try {
          await onBatch({
            topic: batch.topic,
            partition: batch.partition,
            messages: batch.messages.map((m) => ({ topic: batch.topic, partition: batch.partition, offset: m.offset, key: m.key?.toString() ?? null, value: m.value ?? Buffer.alloc(0), headers: headersOf(m.headers) })),
            heartbeat,
          });
        } finally {
          clearInterval(keepAlive);
        }
        this.lastBatchAtMs = Date.now();
        // Advance the fetch position too: without it, a concurrent fetch (more than one
        // partition in flight) reads the handled batch again.
        resolveOffset(batch.lastOffset());
        const next = (BigInt(batch.lastOffset()) + 1n).toString();
        try {
          await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: next }]);
          await heartbeat();
        } catch (error) {
          // The group moved on while the batch was handled: it is stored, not committed, and
          // the partition's new owner reads it again (the store skips what it already holds).
          if (!isMembershipError(error)) throw error;
          this.logger?.warn('offset commit refused: the group rebalanced during the batch; it will be redelivered', { group_id: this.options.groupId, topic: batch.topic, partition: batch.partition, error });
        }
      },
    });
  }

  private scheduleRestart(): void {
    if (this.state === 'stopped' || this.restartTimer !== undefined) return;
    this.state = 'restarting';
    const delayMs = Math.min(this.restartMaxMs, 250 * 2 ** Math.min(this.restarts, 10));
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      void this.restart();
    }, delayMs);
  }

  private async restart(): Promise<void> {
    if (this.state === 'stopped') return;
    this.restarts++;
    await this.consumer?.disconnect().catch(() => undefined);
    try {
      this.consumer = await this.connect();
      this.logger?.info('Kafka consumer rejoined its group', { group_id: this.options.groupId, restarts: this.restarts });
      await this.runCurrent();
    } catch (error) {
      this.lastError = (error as Error).message;
      this.logger?.warn('Kafka consumer could not rejoin; retrying', { group_id: this.options.groupId, error: this.lastError });
      this.state = 'running'; // let scheduleRestart move it to restarting again
      this.scheduleRestart();
    }
  }

  async disconnect(): Promise<void> {
    this.state = 'stopped';
    if (this.restartTimer !== undefined) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    await this.consumer?.disconnect();
  }
}

/**
 * Kafka errors that no retry of the same send can fix: the producer sink bisects the batch and
 * declares what is still refused alone as a gap. Everything else (the broker away, leaders
 * moving, timeouts, an idempotent producer out of sequence, which a fresh producer fixes) is
 * retried. kafkajs wraps the broker's error (after its own retries) in `cause`.
 */
const PERMANENT_SEND_ERRORS: ReadonlySet<string> = new Set([
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
  'INVALID_RECORD',
  'INVALID_REQUIRED_ACKS',
  'TOPIC_AUTHORIZATION_FAILED',
  'CLUSTER_AUTHORIZATION_FAILED',
  'INVALID_TOPIC_EXCEPTION',
  'UNSUPPORTED_FOR_MESSAGE_FORMAT',
]);

export function isPermanentSendError(error: unknown): boolean {
  for (let e = error, depth = 0; typeof e === 'object' && e !== null && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const type = (e as { type?: unknown }).type;
    if (typeof type === 'string' && PERMANENT_SEND_ERRORS.has(type)) return true;
  }
  return false;
}

function unavailable(brokers: readonly string[], what: string, cause: unknown): TransportError {
  return new TransportError('TRANSPORT_UNAVAILABLE', `cannot ${what}: Kafka at ${brokers.join(',')} is not reachable or refused (${(cause as Error).message}). Start a local broker with \`npm run kafka:start\` or set LATTICE_KAFKA_BROKERS.`, { retriable: true, cause });
}
