import { describe, expect, it } from 'vitest';
import { InProcessTransport } from '../../collector/transport/in-process.ts';
import { transportContract, waitFor } from '../support/transport-contract.ts';

transportContract('in-process', async () => new InProcessTransport({ retryBackoffMs: 10, batchMessagesMax: 64 }));

describe('in-process transport retention', () => {
  const produce = async (transport: InProcessTransport, topic: string, count: number) => {
    const producer = await transport.createProducer();
    await producer.send(topic, Array.from({ length: count }, (_, i) => ({ key: `k${i % 3}`, value: String(i) })));
  };

  it('drops messages every reading group has committed, and keeps what one of them still needs', async () => {
    const transport = new InProcessTransport({ defaultPartitions: 1, batchMessagesMax: 500 });
    await transport.ensureTopics([{ name: 't', partitions: 1 }]);
    let fastSeen = 0;
    const fast = await transport.createConsumer({ groupId: 'fast', topics: ['t'], fromBeginning: true });
    const slowSeen: number[] = [];
    let slowOpen = false;
    const slow = await transport.createConsumer({ groupId: 'slow', topics: ['t'], fromBeginning: true });
    await fast.run(async (batch) => {
      fastSeen += batch.messages.length;
    });
    await slow.run(async (batch) => {
      if (!slowOpen) throw new Error('not yet');
      for (const m of batch.messages) slowSeen.push(Number(m.value.toString()));
    });
    await produce(transport, 't', 5_000);
    await waitFor(() => fastSeen === 5_000, 10_000, 'fast group');
    // The slow group has committed nothing: everything is retained for it.
    expect(transport.retainedCount('t')).toBe(5_000);
    slowOpen = true;
    await waitFor(() => slowSeen.length === 5_000, 10_000, 'slow group');
    await waitFor(() => transport.retainedCount('t') === 0, 10_000, 'retention');
    expect(slowSeen).toEqual(Array.from({ length: 5_000 }, (_, i) => i));
    expect(await transport.lag('fast', 't')).toBe(0);

    // A group that arrives later starts at the oldest retained message, as after Kafka retention
    // (the other groups are stopped first, so these ten stay until everybody has them).
    await fast.stop();
    await slow.stop();
    await produce(transport, 't', 10);
    const late: string[] = [];
    const lateConsumer = await transport.createConsumer({ groupId: 'late', topics: ['t'], fromBeginning: true });
    await lateConsumer.run(async (batch) => {
      for (const m of batch.messages) late.push(m.offset);
    });
    await waitFor(() => late.length === 10, 10_000, 'late group');
    expect(late[0]).toBe('5000');
    expect(transport.retainedCount('t')).toBe(10);
    await lateConsumer.stop();
    await transport.close();
  });
});
