/**
 * The producer of a cluster node that runs as its own process (cluster/tcp): pass this module as
 * the node's trace sink module (`traceSinkModule`, CLI `--trace-sink-module`) and each node ships
 * its records to the transitions topic, configured like everything else by LATTICE_* variables
 * (brokers, topic, and the `producer` section: LATTICE_PRODUCER_SPOOL_DIR, ...).
 *
 * Records are keyed by run and node (one node's records stay in order in one partition), bundled,
 * batched, gzip-compressed. A replica never waits for Kafka: the node starts while the broker is
 * down, and while it is away (or slower than the node) records go to the node's on-disk spool
 * (`<spool_dir>/<client_id>-node-<n>`), replayed in order when it is back; a spool left by an
 * earlier process of that node is replayed at start. Past the spool's bound records are dropped
 * into gap records. With `producer.metrics_port` set, the node serves its producer metrics on
 * loopback (node i at metrics_port + i).
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, type LatticeConfig } from '../core/config.ts';
import type { MetricsSnapshot } from '../core/metrics-snapshot.ts';
import type { GapRecord } from '../core/gap-record.ts';
import { LatticeError } from '../core/errors.ts';
import { createLogger, type Logger } from '../core/logging.ts';
import type { TraceRecord } from '../core/trace-schema.ts';
import type { GapTraceSink, ObservableTraceSink, TraceSinkContext } from '../cluster/tcp/trace-output.ts';
import { serveProducerMetrics } from './producer-metrics.ts';
import { BatchingProducerSink, type ProducerStats } from './producer-sink.ts';
import { ReconnectingProducer } from './reconnecting-producer.ts';
import { Spool } from './spool.ts';
import { KafkaTransport } from './transport/kafka.ts';

export interface NodeTraceSink extends GapTraceSink, ObservableTraceSink {
  readonly stats: ProducerStats;
  /** The spool directory this producer owns. */
  readonly spoolDir: string;
  /** Where the producer metrics are served, if they are. */
  readonly metricsUrl: string | undefined;
  close(): Promise<void>;
}

export async function createTraceSink(context: Pick<TraceSinkContext, 'node' | 'runId'>, env: NodeJS.ProcessEnv = process.env): Promise<NodeTraceSink> {
  const config = loadConfig({ env });
  const p = config.producer;
  const clientId = `${config.transport.client_id}-node-${context.node}`;
  const logger = createLogger(config.log_level, { component: 'producer', node: context.node });
  const { spool, fallback } = openSpool(config, clientId, logger);
  const transport = new KafkaTransport({
    brokers: config.transport.brokers,
    clientId,
    logger,
    // kafkajs's own retries run inside one attempt; the sink retries the attempt after that.
    producerRetryMs: Math.max(1_000, Math.floor(p.send_timeout_ms * 0.75)),
  });
  const producer = new ReconnectingProducer(transport, [{ name: config.transport.topic, partitions: config.transport.partitions }]);
  const sink = new BatchingProducerSink(producer, {
    topic: config.transport.topic,
    whenFull: 'spool',
    spool,
    batchRecordsMax: p.batch_records_max,
    lingerMs: p.linger_ms,
    bufferedRecordsMax: p.buffered_records_max,
    retryBackoffInitialMs: p.retry_backoff_initial_ms,
    retryBackoffMaxMs: p.retry_backoff_max_ms,
    sendTimeoutMs: p.send_timeout_ms,
    closeTimeoutMs: p.close_timeout_ms,
    logger,
  });
  if (spool.recovered.entries > 0) logger.info('producer: replaying the spool left by an earlier process', { spool_dir: spool.dir, records: spool.recovered.records, entries: spool.recovered.entries });
  let metrics: Awaited<ReturnType<typeof serveProducerMetrics>> | undefined;
  if (p.metrics_port !== undefined) {
    const port = p.metrics_port === 0 ? 0 : p.metrics_port + context.node;
    try {
      metrics = await serveProducerMetrics(() => sink.stats, port, '127.0.0.1', { node: String(context.node) });
      logger.info('producer: metrics served', { url: metrics.url });
    } catch (error) {
      // Telemetry about telemetry must not stop a replica.
      logger.warn('producer: cannot serve metrics', { port, error });
    }
  }
  return {
    write: (records: readonly TraceRecord[]) => sink.write(records),
    writeGap: (gap: GapRecord) => sink.writeGap(gap),
    writeSnapshots: (snapshots: readonly MetricsSnapshot[]) => sink.writeSnapshots(snapshots),
    traceStats: () => sink.stats,
    get stats() {
      return sink.stats;
    },
    spoolDir: spool.dir,
    metricsUrl: metrics?.url,
    async close() {
      try {
        await sink.close();
      } finally {
        await producer.close().catch(() => undefined);
        await transport.close();
        await metrics?.close();
        // A directory of this process's own (the shared one was busy) is not reused: remove it if empty.
        if (fallback && spool.isEmpty) rmSync(spool.dir, { recursive: true, force: true });
      }
    },
  };
}

/**
 * The node's spool directory; if another live process holds it (two clusters started from one
 * directory), a directory of this process's own beside it.
 */
function openSpool(config: LatticeConfig, clientId: string, logger: Logger): { spool: Spool; fallback: boolean } {
  const p = config.producer;
  const options = {
    bytesMax: p.spool_bytes_max,
    segmentBytes: Math.max(4 * 1024, Math.min(p.spool_segment_bytes, Math.floor(p.spool_bytes_max / 4))),
    fsyncIntervalMs: p.spool_fsync_interval_ms,
    onCorruption: (c: unknown) => logger.warn('producer: corrupt bytes in the spool discarded', { corruption: c }),
  };
  const dir = join(p.spool_dir, clientId);
  try {
    return { spool: Spool.open({ dir, ...options }), fallback: false };
  } catch (error) {
    if (!(error instanceof LatticeError) || error.code !== 'CONFIG_INVALID') throw error;
    const own = `${dir}.${process.pid}`;
    logger.warn('producer: spool directory in use, using one of this process', { spool_dir: dir, instead: own, reason: error.message });
    return { spool: Spool.open({ dir: own, ...options }), fallback: true };
  }
}
