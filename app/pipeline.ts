/**
 * One pipeline session: store + transport opened once, the collector service running on them
 * (the same code as `lattice collect`), then any number of seeded cluster runs shipped through
 * the transport. With the in-process transport the collector must run here (the records would
 * otherwise have nowhere to go); with Kafka, other `lattice collect` groups may read the topic too.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { LatticeConfig } from '../core/config.ts';
import type { Logger } from '../core/logging.ts';
import type { TraceSink } from '../core/sink.ts';
import { BatchingProducerSink, ProducerCounters } from '../collector/producer-sink.ts';
import { runCollectorService, transportFromConfig, type CollectorServiceHandle } from '../collector/run.ts';
import type { Transport, TransportProducer } from '../collector/transport/transport.ts';
import type { Scenario } from '../cluster/chaos/scenario.ts';
import type { ProtocolDefinition } from '../cluster/protocol.ts';
import { runSimulation, type RunResult } from '../cluster/run.ts';
import { openStore, type Store } from '../store/client.ts';
import { DEFAULT_WINDOW_MS, refreshFeatures } from '../store/features.ts';
import { countTransitions } from '../store/transitions.ts';

export interface IngestedRun {
  readonly result: RunResult;
  readonly stored: number;
  readonly deadLettered: number;
}

export interface IngestOptions {
  readonly runId?: string;
  readonly wrapSink?: (sink: TraceSink) => TraceSink;
}

export class Pipeline {
  private constructor(
    readonly config: LatticeConfig,
    readonly store: Store,
    readonly transport: Transport,
    private readonly service: CollectorServiceHandle,
    private readonly producer: TransportProducer,
    /** Shared by the run's sinks, so `/metrics` counts the session's producing as a whole. */
    private readonly producerCounters: ProducerCounters,
  ) {}

  static async open(config: LatticeConfig, logger: Logger): Promise<Pipeline> {
    const store = await openStore(config.store);
    const transport = transportFromConfig(config, logger);
    const producerCounters = new ProducerCounters();
    try {
      const service = await runCollectorService({
        producerStats: () => producerCounters.snapshot(),
        config,
        logger,
        store,
        transport,
        handleSignals: false,
        // Features are refreshed after each run (below), and the metrics endpoint takes any free
        // port so a demo never collides with a `lattice collect` already serving on 9464.
        featuresIntervalMs: 0,
        metricsPort: 0,
        metricsHost: '127.0.0.1',
      });
      const producer = await transport.createProducer();
      return new Pipeline(config, store, transport, service, producer, producerCounters);
    } catch (error) {
      await transport.close().catch(() => undefined);
      await store.close().catch(() => undefined);
      throw error;
    }
  }

  /** Runs the cluster with its trace shipped through the transport; resolves once it is stored
   * and its features are computed. `wrapSink` puts a sink around the transport's (e.g. a census
   * of the records on their way); `runId` names the run (default: from protocol, scenario, seed). */
  async ingestRun(protocol: ProtocolDefinition, scenario: Scenario, seed: number, options: IngestOptions = {}): Promise<IngestedRun> {
    const deadBefore = this.service.stats.deadLettered;
    // The simulator runs on virtual time, so it may wait for the pipeline: backpressure, not a
    // spool (a real replica never waits: see collector/kafka-trace-sink.ts).
    const sink = new BatchingProducerSink(this.producer, { topic: this.config.transport.topic, whenFull: 'wait', counters: this.producerCounters });
    const result = await runSimulation({ protocol, scenario, seed, sink: options.wrapSink?.(sink) ?? sink, ...(options.runId !== undefined && { runId: options.runId }) });
    await sink.flush();
    await this.drain();
    // The service refreshes at the default width; the configured one is computed here too.
    await this.service.refreshFeatures();
    if (this.config.features.window_ms !== DEFAULT_WINDOW_MS) await refreshFeatures(this.store, result.runId, { windowMs: this.config.features.window_ms });
    return { result, stored: await countTransitions(this.store, result.runId), deadLettered: this.service.stats.deadLettered - deadBefore };
  }

  /** Waits until the collector group has committed everything produced so far. */
  async drain(): Promise<void> {
    const { group_id: group } = this.config.collector;
    while ((await this.transport.lag(group, this.config.transport.topic)) > 0) await sleep(25);
  }

  async close(): Promise<void> {
    await this.producer.close().catch(() => undefined);
    await this.service.stop();
    await this.transport.close();
    await this.store.close();
  }
}
