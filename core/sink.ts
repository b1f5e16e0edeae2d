/**
 * Where trace records go. The cluster writes to a TraceSink and knows nothing of Kafka or the
 * in-process transport: the composition root (app/) plugs a transport producer in. `write`
 * resolves when the records are accepted downstream, which is how backpressure reaches the
 * cluster: a full pipeline makes the simulator wait instead of buffering without bound.
 */
import type { TraceRecord } from './trace-schema.ts';

export interface TraceSink {
  write(records: readonly TraceRecord[]): Promise<void>;
}

/** Keeps records in memory; for tests and for runs whose trace is checked in-process. */
export class MemorySink implements TraceSink {
  readonly records: TraceRecord[] = [];

  async write(records: readonly TraceRecord[]): Promise<void> {
    for (const record of records) this.records.push(record);
  }
}

/** Sends every record to each sink in turn (e.g. the transport and an in-memory copy). */
export function teeSink(...sinks: TraceSink[]): TraceSink {
  return {
    async write(records) {
      for (const sink of sinks) await sink.write(records);
    },
  };
}
