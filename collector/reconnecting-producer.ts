import { TransportError } from '../core/errors.ts';
import type { OutgoingMessage, TopicSpec, Transport, TransportProducer } from './transport/transport.ts';

/**
 * A TransportProducer that connects lazily and reconnects: topics are ensured and the producer
 * created on the first send (so a node starts while the broker is down), and after a failed send
 * the next one starts from a fresh producer once `resetAfterFailures` sends in a row have failed
 * (a producer stuck in a bad state — kafkajs's idempotent producer after some outages — never
 * recovers on its own). Every failure is a retriable TransportError unless the transport said it
 * is permanent.
 */
export class ReconnectingProducer implements TransportProducer {
  private producer: Promise<TransportProducer> | null = null;
  private topicsReady = false;
  private failuresInRow = 0;
  private closed = false;
  /** Bumped by `reset`: an attempt started before it stops before it sends anything. */
  private generation = 0;
  /** Producers created so far (1 after the first connect). */
  created = 0;

  constructor(
    private readonly transport: Transport,
    private readonly topics: readonly TopicSpec[],
    private readonly resetAfterFailures = 3,
  ) {}

  async send(topic: string, messages: readonly OutgoingMessage[]): Promise<void> {
    if (this.closed) throw new TransportError('TRANSPORT_FAILED', 'send on a closed producer');
    const generation = this.generation;
    const stillCurrent = () => {
      if (generation !== this.generation || this.closed) throw new TransportError('TRANSPORT_FAILED', `send to ${topic} abandoned (the producer was reset)`, { retriable: true });
    };
    try {
      if (!this.topicsReady) {
        await this.transport.ensureTopics(this.topics);
        this.topicsReady = true;
      }
      stillCurrent();
      const producer = await this.connected();
      stillCurrent();
      await producer.send(topic, messages);
      this.failuresInRow = 0;
    } catch (error) {
      // An attempt of an earlier generation says nothing about the current producer.
      if (generation === this.generation && ++this.failuresInRow >= this.resetAfterFailures) await this.reset();
      if (error instanceof TransportError) throw error;
      throw new TransportError('TRANSPORT_FAILED', `send to ${topic} failed: ${(error as Error).message}`, { retriable: true, cause: error });
    }
  }

  private connected(): Promise<TransportProducer> {
    if (this.producer === null) {
      this.created++;
      const creating = this.transport.createProducer();
      this.producer = creating;
      creating.catch(() => {
        if (this.producer === creating) this.producer = null;
      });
    }
    return this.producer;
  }

  /** Drops the current producer; the next send creates a new one. */
  async reset(): Promise<void> {
    this.generation++;
    const old = this.producer;
    this.producer = null;
    this.failuresInRow = 0;
    if (old !== null) await old.then((p) => p.close()).catch(() => undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.reset();
  }
}
