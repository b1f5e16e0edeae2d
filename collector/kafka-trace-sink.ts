/**
 * The producer of a cluster node that runs as its own process (cluster/tcp): pass this module as
 * the node's trace sink module (`traceSinkModule`, CLI `--trace-sink-module`) and each node ships
 * its records to the transitions topic, configured like everything else by LATTICE_* variables
 * (brokers, topic). Records are keyed by run and node (one node's records stay in order in one
 * partition), bundled, batched, gzip-compressed, and buffered up to a bound: past it, writes wait.
 */
import { loadConfig } from '../core/config.ts';
import type { TraceSink } from '../core/sink.ts';
import type { TraceSinkContext } from '../cluster/tcp/trace-output.ts';
import { BatchingProducerSink } from './producer-sink.ts';
import { KafkaTransport } from './transport/kafka.ts';

export async function createTraceSink(context: Pick<TraceSinkContext, 'node' | 'runId'>, env: NodeJS.ProcessEnv = process.env): Promise<TraceSink & { close(): Promise<void> }> {
  const config = loadConfig({ env });
  const transport = new KafkaTransport({ brokers: config.transport.brokers, clientId: `${config.transport.client_id}-node-${context.node}` });
  try {
    await transport.ensureTopics([{ name: config.transport.topic, partitions: config.transport.partitions }]);
    const producer = await transport.createProducer();
    const sink = new BatchingProducerSink(producer, { topic: config.transport.topic, batchRecordsMax: 2_000, lingerMs: 20, bufferedRecordsMax: 50_000 });
    return {
      write: (records) => sink.write(records),
      async close() {
        try {
          await sink.flush();
        } finally {
          await producer.close().catch(() => undefined);
          await transport.close();
        }
      },
    };
  } catch (error) {
    await transport.close();
    throw error;
  }
}
