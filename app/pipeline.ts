/**
 * One pipeline session: store + transport + collector opened once, then any number of seeded
 * cluster runs shipped through it. With the in-process transport the collector runs here (the
 * records would otherwise have nowhere to go); with Kafka the same is true, and a separate
 * `lattice collect` group may also be consuming the same topic.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { LatticeConfig } from '../core/config.ts';
import type { Logger } from '../core/logging.ts';
import { Collector } from '../collector/collector.ts';
import { ProducerSink } from '../collector/producer-sink.ts';
import type { Transport, TransportProducer } from '../collector/transport/transport.ts';
import type { Scenario } from '../cluster/chaos/scenario.ts';
import type { ProtocolDefinition } from '../cluster/protocol.ts';
import { runSimulation, type RunResult } from '../cluster/run.ts';
import { openStore, type Store } from '../store/client.ts';
import { migrate } from '../store/migrations.ts';
import { countTransitions } from '../store/transitions.ts';
import { createTransport, storeWriter, topicsOf } from './wiring.ts';

export interface IngestedRun {
  readonly result: RunResult;
  readonly stored: number;
  readonly deadLettered: number;
}

export class Pipeline {
  private constructor(
    readonly config: LatticeConfig,
    readonly store: Store,
    readonly transport: Transport,
    private readonly collector: Collector,
    private readonly producer: TransportProducer,
  ) {}

  static async open(config: LatticeConfig, logger: Logger): Promise<Pipeline> {
    const store = await openStore(config.store);
    const transport = createTransport(config, logger);
    try {
      await migrate(store);
      await transport.ensureTopics(topicsOf(config));
      const collector = new Collector({
        transport,
        writer: storeWriter(store),
        topic: config.transport.topic,
        dlqTopic: config.transport.dlq_topic,
        groupId: config.collector.group_id,
        batchRowsMax: config.collector.batch_rows_max,
        recordBytesMax: config.collector.record_bytes_max,
        logger: logger.child({ component: 'collector' }),
      });
      await collector.start();
      const producer = await transport.createProducer();
      return new Pipeline(config, store, transport, collector, producer);
    } catch (error) {
      await transport.close().catch(() => undefined);
      await store.close().catch(() => undefined);
      throw error;
    }
  }

  /** Runs the cluster with its records shipped through the transport, and waits until stored. */
  async ingestRun(protocol: ProtocolDefinition, scenario: Scenario, seed: number): Promise<IngestedRun> {
    const deadBefore = this.collector.stats.deadLettered;
    const sink = new ProducerSink(this.producer, { topic: this.config.transport.topic });
    const result = await runSimulation({ protocol, scenario, seed, sink });
    await this.drain();
    return { result, stored: await countTransitions(this.store, result.runId), deadLettered: this.collector.stats.deadLettered - deadBefore };
  }

  /** Waits until the collector group has committed everything produced so far. */
  async drain(): Promise<void> {
    while ((await this.transport.lag(this.config.collector.group_id, this.config.transport.topic)) > 0) await sleep(25);
  }

  async close(): Promise<void> {
    await this.producer.close().catch(() => undefined);
    await this.collector.stop();
    await this.transport.close();
    await this.store.close();
  }
}
