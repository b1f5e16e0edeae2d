/**
 * The cluster's producer: a TraceSink that ships records to the transitions topic. Records are
 * keyed by run and node, so one node's records land in one partition and stay in order. `write`
 * resolves only when the transport accepted the batch: a slow pipeline slows the producer
 * (backpressure) instead of growing an unbounded buffer.
 */
import type { TraceSink } from '../core/sink.ts';
import type { TraceRecord } from '../core/trace-schema.ts';
import type { OutgoingMessage, TransportProducer } from './transport/transport.ts';

export interface ProducerSinkOptions {
  readonly topic: string;
  /** Most records in one send; larger writes are split. */
  readonly sendRecordsMax?: number;
  /** Records of one node bundled into one message as NDJSON (default 1: one record per message). */
  readonly recordsPerMessageMax?: number;
}

/** A serialised record and its key, waiting to be sent. */
interface Line {
  readonly key: string;
  readonly text: string;
}

const MESSAGE_BYTES_MAX = 256 * 1024;
const RESOLVED = Promise.resolve();

/**
 * Lines → messages: each key's lines, in order, bundled up to `perMessage` lines (and 256 KiB)
 * per message. Order within a key is kept, which is the only order Kafka promises anyway.
 */
export function bundle(lines: readonly Line[], perMessage: number): OutgoingMessage[] {
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
      const lines: Line[] = [];
      for (const record of records.slice(start, start + chunk)) lines.push({ key: recordKey(record), text: JSON.stringify(record) });
      await this.producer.send(this.options.topic, bundle(lines, this.options.recordsPerMessageMax ?? 1));
      this.sent += lines.length;
    }
  }
}

export function recordKey(record: Pick<TraceRecord, 'run_id' | 'node'>): string {
  return `${record.run_id}/${record.node}`;
}

export interface BatchingProducerSinkOptions {
  readonly topic: string;
  /** Records in one send (one produce request, compressed as a whole per partition). */
  readonly batchRecordsMax?: number;
  /** A partial batch is sent this long after its first record arrived. */
  readonly lingerMs?: number;
  /** Records held (waiting + being sent); past this, `write` waits: backpressure, bounded memory. */
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
}

/**
 * The producer for callers that write a few records at a time (a node emits one transition per
 * step): records are serialised on arrival, gathered into batches of `batchRecordsMax` or
 * `lingerMs`, and sent one batch at a time, so order per key holds. `write` resolves as soon as
 * the records are buffered, unless the buffer is full, in which case it waits for room. A send
 * that fails after the transport's own retries fails the next `write`/`flush` (never silently).
 */
export class BatchingProducerSink implements TraceSink {
  private waiting: Line[] = [];
  private inFlight = 0;
  private sending: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private failure: unknown;
  private sent = 0;
  private readonly roomWaiters: (() => void)[] = [];
  private readonly batchRecordsMax: number;
  private readonly lingerMs: number;
  private readonly bufferedRecordsMax: number;

  constructor(
    private readonly producer: TransportProducer,
    private readonly options: BatchingProducerSinkOptions,
  ) {
    this.batchRecordsMax = options.batchRecordsMax ?? 1_000;
    this.lingerMs = options.lingerMs ?? 20;
    this.bufferedRecordsMax = Math.max(options.bufferedRecordsMax ?? 20_000, this.batchRecordsMax);
  }

  get recordsSent(): number {
    return this.sent;
  }

  get recordsBuffered(): number {
    return this.waiting.length + this.inFlight;
  }

  write(records: readonly TraceRecord[]): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.recordsBuffered + records.length > this.bufferedRecordsMax) return this.writeWhenRoom(records);
    // Room for all of them: the common case, without an async frame per call.
    for (const record of records) this.waiting.push({ key: recordKey(record), text: JSON.stringify(record) });
    this.kick(false);
    return RESOLVED;
  }

  private async writeWhenRoom(records: readonly TraceRecord[]): Promise<void> {
    for (const record of records) {
      while (this.recordsBuffered >= this.bufferedRecordsMax) {
        this.kick(true);
        await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
        this.throwIfFailed();
      }
      this.waiting.push({ key: recordKey(record), text: JSON.stringify(record) });
    }
    this.kick(false);
  }

  /** Sends everything buffered; resolves when the transport accepted it. */
  async flush(): Promise<void> {
    while (this.recordsBuffered > 0) {
      this.kick(true);
      await this.sending;
      this.throwIfFailed();
    }
    this.throwIfFailed();
  }

  private kick(now: boolean): void {
    if (this.sending || this.waiting.length === 0) return;
    if (now || this.waiting.length >= this.batchRecordsMax) {
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
      while (this.waiting.length > 0 && this.failure === undefined) {
        const batch = this.waiting.splice(0, this.takeCount());
        this.inFlight = batch.length;
        try {
          await this.producer.send(this.options.topic, bundle(batch, this.options.recordsPerMessageMax ?? 100));
          this.sent += batch.length;
        } catch (error) {
          this.failure = error;
          this.waiting = [];
        } finally {
          this.inFlight = 0;
          for (const wake of this.roomWaiters.splice(0)) wake();
        }
        // A send that completes at once (in-process transport) would otherwise let a busy writer
        // run on microtasks alone and starve the consumers sharing this event loop.
        await new Promise<void>((resolve) => setImmediate(resolve));
        // Leave a partial batch to the linger timer unless someone is waiting for room.
        if (this.waiting.length < this.batchRecordsMax && this.roomWaiters.length === 0) break;
      }
    } finally {
      this.sending = undefined;
      if (this.waiting.length > 0) this.kick(false);
    }
  }

  /** How many waiting lines the next send takes: up to batchRecordsMax and sendBytesMax. */
  private takeCount(): number {
    const bytesMax = this.options.sendBytesMax ?? 4 * 1024 * 1024;
    let bytes = 0;
    let count = 0;
    for (const line of this.waiting) {
      if (count >= this.batchRecordsMax || (count > 0 && bytes + line.text.length > bytesMax)) break;
      bytes += line.text.length + 1;
      count++;
    }
    return count;
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }
}
