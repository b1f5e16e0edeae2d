/**
 * The in-process transport: Kafka's semantics (partitioned topics, keyed ordering, consumer groups
 * with committed offsets, redelivery of uncommitted batches) in one process's memory, for the
 * embedded default where no broker runs. It is a real component with its own contract tests, not
 * a test double: the same suite runs against the Kafka transport.
 */
import { TransportError } from '../../core/errors.ts';
import {
  partitionForKey,
  type ConsumerOptions,
  type IncomingBatch,
  type IncomingMessage,
  type OutgoingMessage,
  type TopicSpec,
  type Transport,
  type TransportConsumer,
  type TransportProducer,
} from './transport.ts';

interface StoredMessage {
  readonly key: string | null;
  readonly value: Buffer;
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * One partition's messages. Offsets are absolute; messages below `base` are gone (retention):
 * once every group that reads the topic has committed past them nobody will ask for them again,
 * and keeping them would make a long embedded session (a large `chaos generate`) grow without
 * bound. A group that joins later starts at `base`, as it would after Kafka's retention.
 */
class PartitionLog {
  base = 0;
  private messages: StoredMessage[] = [];

  get end(): number {
    return this.base + this.messages.length;
  }

  push(message: StoredMessage): void {
    this.messages.push(message);
  }

  at(offset: number): StoredMessage {
    const message = this.messages[offset - this.base];
    if (message === undefined) throw new RangeError(`offset ${offset} is not retained (${this.base}..${this.end})`);
    return message;
  }

  retained(): StoredMessage[] {
    return this.messages;
  }

  /** Drops messages below `offset`, in chunks so the copy is amortised. */
  trimTo(offset: number): void {
    const drop = Math.min(offset, this.end) - this.base;
    if (drop < 1_024 && drop < this.messages.length) return;
    if (drop <= 0) return;
    this.messages = this.messages.slice(drop);
    this.base += drop;
  }
}

interface Topic {
  readonly partitions: PartitionLog[];
  /** Groups that have consumed this topic: retention waits for all of them. */
  readonly readers: Set<Group>;
}

interface GroupMember {
  readonly id: number;
  assigned: Set<string>;
}

interface Group {
  /** `${topic}:${partition}` → next offset to read after the last committed batch. */
  readonly committed: Map<string, number>;
  readonly members: GroupMember[];
}

export interface InProcessTransportOptions {
  /** Partitions of a topic created on first use without ensureTopics. */
  readonly defaultPartitions?: number;
  /** Most messages handed to a handler at once. */
  readonly batchMessagesMax?: number;
  /** Wait after a failed handler before redelivering, so a failing sink is not spun on. */
  readonly retryBackoffMs?: number;
}

export class InProcessTransport implements Transport {
  readonly kind = 'inprocess' as const;
  private readonly topics = new Map<string, Topic>();
  private readonly groups = new Map<string, Group>();
  private readonly waiters = new Set<() => void>();
  private nextMemberId = 0;
  private roundRobin = 0;
  private closed = false;
  private readonly defaultPartitions: number;
  private readonly batchMessagesMax: number;
  private readonly retryBackoffMs: number;

  constructor(options: InProcessTransportOptions = {}) {
    this.defaultPartitions = options.defaultPartitions ?? 4;
    this.batchMessagesMax = options.batchMessagesMax ?? 2_000;
    this.retryBackoffMs = options.retryBackoffMs ?? 100;
  }

  async ensureTopics(topics: readonly TopicSpec[]): Promise<void> {
    for (const spec of topics) this.topic(spec.name, spec.partitions);
  }

  async createProducer(): Promise<TransportProducer> {
    let open = true;
    return {
      send: async (topicName, messages) => {
        if (!open || this.closed) throw new TransportError('TRANSPORT_UNAVAILABLE', 'in-process producer is closed');
        const topic = this.topic(topicName);
        for (const message of messages) this.append(topic, message);
        this.wake();
      },
      close: async () => {
        open = false;
      },
    };
  }

  async createConsumer(options: ConsumerOptions): Promise<TransportConsumer> {
    const group = this.group(options.groupId);
    const member: GroupMember = { id: this.nextMemberId++, assigned: new Set() };
    let running = false;
    let stopped = false;
    let loop: Promise<void> | undefined;
    let lastBatchAtMs: number | undefined;
    for (const name of options.topics) this.topic(name).readers.add(group);

    const join = () => {
      group.members.push(member);
      this.rebalance(group, options.topics);
    };
    const leave = () => {
      const index = group.members.indexOf(member);
      if (index >= 0) group.members.splice(index, 1);
      this.rebalance(group, options.topics);
      this.wake();
    };

    const nextBatch = (): IncomingBatch | undefined => {
      for (const slot of member.assigned) {
        const [topicName, partitionText] = splitSlot(slot);
        const partition = Number(partitionText);
        const log = this.topic(topicName).partitions[partition];
        if (log === undefined) continue;
        const start = Math.max(log.base, group.committed.get(slot) ?? (options.fromBeginning ? log.base : log.end));
        if (!group.committed.has(slot)) group.committed.set(slot, start);
        if (start >= log.end) continue;
        const end = Math.min(log.end, start + this.batchMessagesMax);
        const messages: IncomingMessage[] = [];
        for (let offset = start; offset < end; offset++) {
          const stored = log.at(offset);
          messages.push({ topic: topicName, partition, offset: String(offset), key: stored.key, value: stored.value, headers: stored.headers });
        }
        return { topic: topicName, partition, messages, heartbeat: async () => undefined };
      }
      return undefined;
    };

    const runLoop = async (onBatch: (batch: IncomingBatch) => Promise<void>) => {
      while (!stopped && !this.closed) {
        const batch = nextBatch();
        if (batch === undefined) {
          await this.waitForMessages();
          continue;
        }
        const slot = `${batch.topic}:${batch.partition}`;
        try {
          await onBatch(batch);
          lastBatchAtMs = Date.now();
          // Commit only after the handler stored the batch, and only if this member still owns
          // the partition (after a rebalance, the new owner re-reads from the committed offset).
          if (member.assigned.has(slot)) {
            group.committed.set(slot, Number(batch.messages.at(-1)!.offset) + 1);
            this.applyRetention(batch.topic, batch.partition);
          }
        } catch {
          await new Promise((resolve) => setTimeout(resolve, this.retryBackoffMs));
        }
      }
    };

    return {
      run: async (onBatch) => {
        if (running) throw new TransportError('TRANSPORT_FAILED', 'consumer is already running');
        running = true;
        join();
        loop = runLoop(onBatch);
      },
      stop: async () => {
        if (stopped) return;
        stopped = true;
        leave();
        await loop;
      },
      // One process, no group coordinator to lose: it runs until stopped.
      health: () => ({ state: stopped ? 'stopped' : running ? 'running' : 'starting', restarts: 0, crashes: 0, ...(lastBatchAtMs !== undefined && { lastBatchAtMs }) }),
    };
  }

  async lag(groupId: string, topicName: string): Promise<number> {
    const topic = this.topics.get(topicName);
    if (!topic) return 0;
    const group = this.group(groupId);
    let total = 0;
    topic.partitions.forEach((log, partition) => {
      total += log.end - Math.max(log.base, group.committed.get(`${topicName}:${partition}`) ?? log.base);
    });
    return total;
  }

  async readTopic(topicName: string, options: { messagesMax: number }): Promise<IncomingMessage[]> {
    return this.messages(topicName).slice(0, options.messagesMax);
  }

  /** Every message still retained in a topic, for tests and dead-letter reports. */
  messages(topicName: string): IncomingMessage[] {
    const topic = this.topics.get(topicName);
    if (!topic) return [];
    return topic.partitions.flatMap((log, partition) => log.retained().map((m, i) => ({ topic: topicName, partition, offset: String(log.base + i), key: m.key, value: m.value, headers: m.headers })));
  }

  /** Messages retained across all partitions of a topic (retention is observable, and tested). */
  retainedCount(topicName: string): number {
    return this.topics.get(topicName)?.partitions.reduce((sum, log) => sum + log.retained().length, 0) ?? 0;
  }

  private applyRetention(topicName: string, partition: number): void {
    const topic = this.topics.get(topicName);
    const log = topic?.partitions[partition];
    if (!topic || !log) return;
    let low = Number.POSITIVE_INFINITY;
    for (const group of topic.readers) low = Math.min(low, group.committed.get(`${topicName}:${partition}`) ?? log.base);
    if (Number.isFinite(low)) log.trimTo(low);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wake();
  }

  private topic(name: string, partitions = this.defaultPartitions): Topic {
    let topic = this.topics.get(name);
    if (!topic) {
      topic = { partitions: Array.from({ length: partitions }, () => new PartitionLog()), readers: new Set() };
      this.topics.set(name, topic);
    }
    return topic;
  }

  private group(id: string): Group {
    let group = this.groups.get(id);
    if (!group) {
      group = { committed: new Map(), members: [] };
      this.groups.set(id, group);
    }
    return group;
  }

  private append(topic: Topic, message: OutgoingMessage): void {
    const partition = partitionForKey(message.key, topic.partitions.length, () => this.roundRobin++);
    const value = typeof message.value === 'string' ? Buffer.from(message.value) : message.value;
    topic.partitions[partition]!.push({ key: message.key, value, headers: message.headers ?? NO_HEADERS });
  }

  /** Round-robin assignment of every partition of the group's topics over its members. */
  private rebalance(group: Group, topicNames: readonly string[]): void {
    for (const member of group.members) member.assigned = new Set();
    if (group.members.length === 0) return;
    let i = 0;
    for (const name of topicNames) {
      const partitions = this.topic(name).partitions.length;
      for (let p = 0; p < partitions; p++) group.members[i++ % group.members.length]!.assigned.add(`${name}:${p}`);
    }
  }

  private waitForMessages(): Promise<void> {
    return new Promise((resolve) => {
      // Wake on new messages, or poll again shortly (a rebalance may have handed us work).
      const timer = setTimeout(done, 50);
      function done() {
        clearTimeout(timer);
        waiters.delete(done);
        resolve();
      }
      const waiters = this.waiters;
      waiters.add(done);
    });
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}

const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

function splitSlot(slot: string): [string, string] {
  const at = slot.lastIndexOf(':');
  return [slot.slice(0, at), slot.slice(at + 1)];
}
