/**
 * The composition root's building blocks: configuration in, concrete transports and writers out.
 * The collector owns how its transport and store writer are built; the root reuses exactly those,
 * so the demo and `lattice collect` ingest through the same code.
 */
import type { LatticeConfig } from '../core/config.ts';
import type { TopicSpec } from '../collector/transport/transport.ts';

export { transportFromConfig as createTransport } from '../collector/run.ts';
export { storeRecordWriter as storeWriter } from '../collector/store-writer.ts';

export function topicsOf(config: LatticeConfig): TopicSpec[] {
  return [
    { name: config.transport.topic, partitions: config.transport.partitions },
    { name: config.transport.dlq_topic, partitions: 1 },
  ];
}
