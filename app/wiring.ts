/**
 * The composition root's building blocks: the one place that turns configuration into concrete
 * transports, stores and sinks. Modules below never choose their own implementations.
 */
import type { LatticeConfig } from '../core/config.ts';
import type { Logger } from '../core/logging.ts';
import type { RecordWriter } from '../collector/collector.ts';
import { InProcessTransport } from '../collector/transport/in-process.ts';
import { KafkaTransport } from '../collector/transport/kafka.ts';
import type { Transport } from '../collector/transport/transport.ts';
import type { Store } from '../store/client.ts';
import { insertTransitions } from '../store/transitions.ts';

export function createTransport(config: LatticeConfig, logger: Logger): Transport {
  if (config.transport.kind === 'kafka') {
    return new KafkaTransport({ brokers: config.transport.brokers, clientId: config.transport.client_id, logger: logger.child({ component: 'kafka' }) });
  }
  return new InProcessTransport({ defaultPartitions: config.transport.partitions });
}

export function storeWriter(store: Store): RecordWriter {
  return { write: (records) => insertTransitions(store, records) };
}

export function topicsOf(config: LatticeConfig) {
  return [
    { name: config.transport.topic, partitions: config.transport.partitions },
    { name: config.transport.dlq_topic, partitions: 1 },
  ];
}
