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
      const messages: OutgoingMessage[] = [];
      for (const record of records.slice(start, start + chunk)) messages.push({ key: recordKey(record), value: JSON.stringify(record) });
      await this.producer.send(this.options.topic, messages);
      this.sent += messages.length;
    }
  }
}

export function recordKey(record: Pick<TraceRecord, 'run_id' | 'node'>): string {
  return `${record.run_id}/${record.node}`;
}
