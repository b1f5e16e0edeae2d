/**
 * Where trace records and metrics snapshots go. The cluster writes to a TraceSink and knows
 * nothing of Kafka or the in-process transport: the composition root (app/) plugs a transport
 * producer in. `write` resolves when the records are accepted downstream, which is how
 * backpressure reaches the cluster: a full pipeline makes the simulator wait instead of buffering
 * without bound.
 */
import type { MetricsSnapshot } from './metrics-snapshot.ts';
import type { TraceRecord } from './trace-schema.ts';

export interface TraceSink {
  write(records: readonly TraceRecord[]): Promise<void>;
  /** The second record kind, in order with the records written before and after it. */
  writeSnapshots(snapshots: readonly MetricsSnapshot[]): Promise<void>;
}

/** Keeps records in memory; for tests and for runs whose trace is checked in-process. */
export class MemorySink implements TraceSink {
  readonly records: TraceRecord[] = [];
  readonly snapshots: MetricsSnapshot[] = [];

  async write(records: readonly TraceRecord[]): Promise<void> {
    for (const record of records) this.records.push(record);
  }

  async writeSnapshots(snapshots: readonly MetricsSnapshot[]): Promise<void> {
    for (const snapshot of snapshots) this.snapshots.push(snapshot);
  }
}

/** Counts and forgets: for runs measured or checked in-process, whose trace is not kept. */
export class DiscardSink implements TraceSink {
  records = 0;
  snapshots = 0;

  async write(records: readonly TraceRecord[]): Promise<void> {
    this.records += records.length;
  }

  async writeSnapshots(snapshots: readonly MetricsSnapshot[]): Promise<void> {
    this.snapshots += snapshots.length;
  }
}

/** Sends every record to each sink in turn (e.g. the transport and an in-memory copy). */
export function teeSink(...sinks: TraceSink[]): TraceSink {
  return {
    async write(records) {
      for (const sink of sinks) await sink.write(records);
    },
    async writeSnapshots(snapshots) {
      for (const sink of sinks) await sink.writeSnapshots(snapshots);
    },
  };
}
