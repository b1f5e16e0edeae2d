/**
 * The transport between the cluster's producers and the collectors: a narrow interface with two
 * implementations that pass the same contract tests — in-process (embedded default, no servers)
 * and Kafka (kafkajs against a real broker). Semantics are Kafka's: keyed messages keep their
 * order within a partition, consumer groups share partitions, and a consumer's offsets are
 * committed only after its batch handler resolves (at-least-once).
 */
export interface OutgoingMessage {
  /** Messages with the same key go to the same partition, in order (one node = one key). */
  readonly key: string | null;
  readonly value: string | Buffer;
  /** Kafka record headers (metadata beside the value, e.g. a dead letter's reason and source). */
  readonly headers?: Readonly<Record<string, string>>;
}

export interface IncomingMessage {
  readonly topic: string;
  readonly partition: number;
  /** Position in the partition, as Kafka gives it (a decimal string). */
  readonly offset: string;
  readonly key: string | null;
  readonly value: Buffer;
  /** Record headers as UTF-8 strings; empty when the message has none. */
  readonly headers: Readonly<Record<string, string>>;
}

export interface IncomingBatch {
  readonly topic: string;
  readonly partition: number;
  readonly messages: readonly IncomingMessage[];
  /** Keeps group membership alive while a handler waits (e.g. retrying a down store). */
  heartbeat(): Promise<void>;
}

export interface TransportProducer {
  send(topic: string, messages: readonly OutgoingMessage[]): Promise<void>;
  close(): Promise<void>;
}

export interface ConsumerOptions {
  readonly groupId: string;
  readonly topics: readonly string[];
  /** Where a group with no committed offset starts. */
  readonly fromBeginning: boolean;
}

/**
 * Delivers batches to one handler. If the handler throws, nothing is committed and the batch is
 * delivered again (to this consumer or, after a rebalance, to another member of the group).
 */
export interface TransportConsumer {
  run(onBatch: (batch: IncomingBatch) => Promise<void>): Promise<void>;
  stop(): Promise<void>;
  /** Whether it is consuming, told truthfully (a crashed member says so until it has rejoined). */
  health(): ConsumerHealth;
}

export interface ConsumerHealth {
  readonly state: 'starting' | 'running' | 'restarting' | 'stopped';
  /** Times the consumer was rebuilt after a crash it could not recover from by itself. */
  readonly restarts: number;
  readonly crashes: number;
  readonly lastError?: string;
  /** Wall-clock time the last batch was handled, ms since the Unix epoch. */
  readonly lastBatchAtMs?: number;
}

export interface TopicSpec {
  readonly name: string;
  readonly partitions: number;
}

export interface Transport {
  readonly kind: 'inprocess' | 'kafka';
  ensureTopics(topics: readonly TopicSpec[]): Promise<void>;
  createProducer(): Promise<TransportProducer>;
  createConsumer(options: ConsumerOptions): Promise<TransportConsumer>;
  /**
   * The messages a topic holds now, oldest first per partition, at most `messagesMax` (for
   * inspection: the dead-letter topic). Joins no consumer group that others read with.
   */
  readTopic(topic: string, options: { messagesMax: number }): Promise<IncomingMessage[]>;
  /** Messages in `topic` not yet committed by `groupId` (all partitions). */
  lag(groupId: string, topic: string): Promise<number>;
  close(): Promise<void>;
}

/** Kafka's default partitioner is murmur2; any stable hash keeps one key's messages together. */
export function partitionForKey(key: string | null, partitions: number, roundRobin: () => number): number {
  if (key === null) return roundRobin() % partitions;
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % partitions;
}
