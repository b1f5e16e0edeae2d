/**
 * The collector as a service (`lattice collect` calls this): opens and migrates the store, builds
 * the transport from configuration, runs one Collector in the configured consumer group, serves
 * its Prometheus metrics, keeps the features (at features.window_ms) of the runs it ingests refreshed, and
 * shuts down gracefully on SIGTERM/SIGINT or an abort signal: stop consuming, let the batch in
 * hand finish or abandon it uncommitted (it is redelivered), refresh features, close the store.
 * Start several of these with the same group id to share the topic's partitions.
 */
import type { LatticeConfig } from '../core/config.ts';
import type { Logger } from '../core/logging.ts';
import { openStore, type Store } from '../store/client.ts';
import { refreshFeatures } from '../store/features.ts';
import { migrate } from '../store/migrations.ts';
import { Collector, type CollectorStats, type RecordWriter } from './collector.ts';
import { readinessOf } from './health.ts';
import { CollectorMetrics } from './metrics.ts';
import { registerProducerMetrics, type ProducerStatsSource } from './producer-metrics.ts';
import type { RetryPolicy } from './retry.ts';
import { storeRecordWriter } from './store-writer.ts';
import { InProcessTransport } from './transport/in-process.ts';
import { KafkaTransport } from './transport/kafka.ts';
import type { Transport } from './transport/transport.ts';

export interface CollectorServiceOptions {
  readonly config: LatticeConfig;
  readonly logger: Logger;
  /** Aborting it stops the service, like SIGTERM. */
  readonly signal?: AbortSignal;
  /** Port of the `/metrics` endpoint; 0 picks a free one. Default: `collector.metrics_port`. */
  readonly metricsPort?: number;
  /** Default: `collector.metrics_host` (loopback). */
  readonly metricsHost?: string;
  /** Install SIGTERM/SIGINT handlers (default true; tests pass false and use `signal`). */
  readonly handleSignals?: boolean;
  /** How often features of freshly ingested runs are recomputed; 0 turns it off. Default 5000. */
  readonly featuresIntervalMs?: number;
  /** Use this transport instead of building one (the embedded demo shares its in-process one). */
  readonly transport?: Transport;
  /** Use this store instead of opening one (it is then not closed on stop). */
  readonly store?: Store;
  /** Wraps the store writer (tests inject outages here). */
  readonly wrapWriter?: (writer: RecordWriter) => RecordWriter;
  readonly retry?: RetryPolicy;
  /** Producers in this process (the embedded pipeline's): their counters join `/metrics`. */
  readonly producerStats?: ProducerStatsSource;
}

export interface CollectorServiceHandle {
  readonly stats: CollectorStats;
  readonly metricsUrl: string;
  /** The address `/metrics` listens on (loopback by default). */
  readonly metricsAddress: string;
  readonly collector: Collector;
  readonly store: Store;
  readonly transport: Transport;
  /** Resolves once stopped (by `stop`, a signal or the abort signal). */
  readonly stopped: Promise<void>;
  stop(): Promise<void>;
  /** Recomputes features of the runs ingested since the last refresh. */
  refreshFeatures(): Promise<void>;
}

export function transportFromConfig(config: LatticeConfig, logger: Logger): Transport {
  if (config.transport.kind === 'kafka') {
    return new KafkaTransport({
      brokers: config.transport.brokers,
      clientId: config.transport.client_id,
      logger: logger.child({ component: 'kafka' }),
      fetchMaxWaitMs: config.collector.flush_interval_ms,
      partitionsConsumedConcurrently: 2,
      consumerRestartMaxMs: config.collector.consumer_restart_max_ms,
    });
  }
  return new InProcessTransport({ defaultPartitions: config.transport.partitions, batchMessagesMax: config.collector.batch_rows_max });
}

export async function runCollectorService(options: CollectorServiceOptions): Promise<CollectorServiceHandle> {
  const { config, logger } = options;
  const log = logger.child({ component: 'collector' });
  // Signals are caught from the first moment: one that arrives while starting stops the service
  // as soon as it is up, instead of killing the process halfway through.
  let requestStop: () => void = () => {
    stopRequested = true;
  };
  let stopRequested = false;
  const onSignal = (name: string) => () => {
    log.info('signal received, shutting down', { signal: name });
    requestStop();
  };
  const onTerm = onSignal('SIGTERM');
  const onInt = onSignal('SIGINT');
  const onAbort = () => requestStop();
  const detachSignals = () => {
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
    options.signal?.removeEventListener('abort', onAbort);
  };
  if (options.handleSignals ?? true) {
    process.once('SIGTERM', onTerm);
    process.once('SIGINT', onInt);
  }
  if (options.signal?.aborted) stopRequested = true;
  else options.signal?.addEventListener('abort', onAbort, { once: true });

  let store: Store;
  try {
    store = options.store ?? (await openStore(config.store));
  } catch (error) {
    detachSignals();
    throw error;
  }
  const ownsStore = options.store === undefined;
  const transport = options.transport ?? transportFromConfig(config, logger);
  const ownsTransport = options.transport === undefined;
  const cleanups: (() => Promise<void>)[] = [];
  const cleanup = async () => {
    for (const step of cleanups.splice(0).reverse()) await step().catch((error: unknown) => log.warn('shutdown step failed', { error }));
  };
  cleanups.push(async () => detachSignals());
  if (ownsStore) cleanups.push(() => store.close());
  if (ownsTransport) cleanups.push(() => transport.close());

  try {
    await migrate(store);
    await transport.ensureTopics([
      { name: config.transport.topic, partitions: config.transport.partitions },
      { name: config.transport.dlq_topic, partitions: 1 },
    ]);
    const baseWriter = storeRecordWriter(store);
    const collector = new Collector({
      transport,
      writer: options.wrapWriter ? options.wrapWriter(baseWriter) : baseWriter,
      topic: config.transport.topic,
      dlqTopic: config.transport.dlq_topic,
      groupId: config.collector.group_id,
      batchRowsMax: config.collector.batch_rows_max,
      flushIntervalMs: config.collector.flush_interval_ms,
      recordBytesMax: config.collector.record_bytes_max,
      logger: log,
      consumers: 2,
      ...(options.retry ? { retry: options.retry } : {}),
    });

    // Features: remember, per run, the earliest record ingested since the last refresh.
    const dirty = new Map<string, number>();
    collector.on('batch_handled', ({ records }) => {
      for (const r of records) {
        const since = dirty.get(r.run_id);
        if (since === undefined || r.ts_us < since) dirty.set(r.run_id, r.ts_us);
      }
    });
    let refreshing: Promise<void> = Promise.resolve();
    const refresh = () => {
      refreshing = refreshing.then(async () => {
        const runs = [...dirty.entries()];
        dirty.clear();
        for (const [runId, sinceUs] of runs) {
          try {
            await refreshFeatures(store, runId, { sinceUs, windowMs: options.config.features.window_ms });
          } catch (error) {
            const since = dirty.get(runId);
            dirty.set(runId, since === undefined ? sinceUs : Math.min(since, sinceUs));
            log.warn('feature refresh failed; will retry', { run_id: runId, error });
          }
        }
      });
      return refreshing;
    };
    const interval = options.featuresIntervalMs ?? 5_000;
    if (interval > 0) {
      const timer = setInterval(() => void refresh(), interval);
      timer.unref();
      cleanups.push(async () => clearInterval(timer));
    }

    const metrics = new CollectorMetrics(collector, {
      lag: () => transport.lag(config.collector.group_id, config.transport.topic),
      labels: { group: config.collector.group_id },
      processMetrics: true,
    });
    if (options.producerStats) registerProducerMetrics(metrics.registry, options.producerStats);
    const startedAtMs = Date.now();
    const readiness = async () => {
      const lag = await transport.lag(config.collector.group_id, config.transport.topic).catch(() => null);
      return readinessOf({ health: collector.health(), lag, nowMs: Date.now(), startedAtMs, stallAfterMs: config.collector.stall_after_ms });
    };
    const server = await metrics.serve(options.metricsPort ?? config.collector.metrics_port, options.metricsHost ?? config.collector.metrics_host, {
      // Liveness: the process supervises its consumers; it is dead only once the collector stopped.
      '/healthz': async () => {
        const r = await readiness();
        return { status: collector.running ? 200 : 503, body: { status: collector.running ? 'alive' : 'stopped', consuming: r.ready, reasons: r.reasons, ...collector.health() } };
      },
      '/readyz': async () => {
        const r = await readiness();
        return { status: r.ready ? 200 : 503, body: { ready: r.ready, reasons: r.reasons, lag: r.lag, ...collector.health() } };
      },
    });
    cleanups.push(() => server.close());

    await collector.start();

    let resolveStopped!: () => void;
    const stopped = new Promise<void>((resolve) => (resolveStopped = resolve));
    let stopping: Promise<void> | undefined;
    const stop = () => {
      stopping ??= (async () => {
        log.info('collector service stopping');
        await collector.stop();
        await refresh();
        await cleanup();
        resolveStopped();
      })();
      return stopping;
    };
    requestStop = () => void stop();
    if (stopRequested) void stop();

    log.info('collector service running', { metrics_url: server.url, store: store.location, transport: transport.kind });
    return { stats: collector.stats, metricsUrl: server.url, metricsAddress: server.address, collector, store, transport, stopped, stop, refreshFeatures: refresh };
  } catch (error) {
    await cleanup();
    throw error;
  }
}
