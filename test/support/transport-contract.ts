/**
 * The contract every Transport must meet, run against the in-process transport and against a
 * real Kafka broker with the same assertions.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IncomingMessage, Transport, TransportConsumer } from '../../collector/transport/transport.ts';

export function waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = async () => {
      if (await predicate()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      setTimeout(tick, 25);
    };
    void tick();
  });
}

const PARTITIONS = 3;

export function transportContract(name: string, makeTransport: () => Promise<Transport>): void {
  describe(`transport contract: ${name}`, () => {
    let transport: Transport;
    const consumers: TransportConsumer[] = [];
    const fresh = (label: string) => `contract.${label}.${randomUUID().slice(0, 8)}`;
    const start = async (groupId: string, topic: string, onBatch: (messages: readonly IncomingMessage[]) => Promise<void>) => {
      const consumer = await transport.createConsumer({ groupId, topics: [topic], fromBeginning: true });
      consumers.push(consumer);
      await consumer.run(async (batch) => onBatch(batch.messages));
      return consumer;
    };
    const produce = async (topic: string, count: number, keys: number, from = 0) => {
      const producer = await transport.createProducer();
      const messages = Array.from({ length: count }, (_, i) => ({ key: `node-${(from + i) % keys}`, value: JSON.stringify({ key: `node-${(from + i) % keys}`, i: from + i }) }));
      for (let i = 0; i < messages.length; i += 100) await producer.send(topic, messages.slice(i, i + 100));
      await producer.close();
    };
    const decode = (m: IncomingMessage) => JSON.parse(m.value.toString()) as { key: string; i: number };

    beforeAll(async () => {
      transport = await makeTransport();
    });
    afterAll(async () => {
      for (const c of consumers) await c.stop().catch(() => undefined);
      await transport?.close();
    });

    it('delivers every message once, in order per key', async () => {
      const topic = fresh('order');
      await transport.ensureTopics([{ name: topic, partitions: PARTITIONS }]);
      await produce(topic, 600, 7);
      const seen: { key: string; i: number }[] = [];
      const consumer = await start(fresh('g'), topic, async (ms) => {
        for (const m of ms) {
          expect(m.key).toBe(decode(m).key);
          seen.push(decode(m));
        }
      });
      await waitFor(() => seen.length >= 600, 30_000, '600 messages');
      await consumer.stop();
      expect(new Set(seen.map((s) => s.i)).size).toBe(600);
      expect(seen.length).toBe(600);
      for (let k = 0; k < 7; k++) {
        const ofKey = seen.filter((s) => s.key === `node-${k}`).map((s) => s.i);
        expect(ofKey).toEqual([...ofKey].sort((a, b) => a - b));
      }
    });

    it('reports lag, and resumes a group from its committed offsets', async () => {
      const topic = fresh('resume');
      const group = fresh('g');
      await transport.ensureTopics([{ name: topic, partitions: PARTITIONS }]);
      await produce(topic, 200, 5);
      let first = 0;
      const a = await start(group, topic, async (ms) => {
        first += ms.length;
      });
      await waitFor(async () => first >= 200 && (await transport.lag(group, topic)) === 0, 30_000, 'first consumer to commit 200');
      await a.stop();
      await produce(topic, 50, 5, 200);
      expect(await transport.lag(group, topic)).toBe(50);
      const later: number[] = [];
      const b = await start(group, topic, async (ms) => {
        for (const m of ms) later.push(decode(m).i);
      });
      await waitFor(() => later.length >= 50, 30_000, '50 new messages');
      await b.stop();
      expect(later.sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => 200 + i));
    });

    it('redelivers a batch whose handler failed, losing nothing', async () => {
      const topic = fresh('redeliver');
      await transport.ensureTopics([{ name: topic, partitions: 1 }]);
      await produce(topic, 100, 1);
      let failures = 0;
      const stored = new Set<number>();
      let deliveries = 0;
      const consumer = await start(fresh('g'), topic, async (ms) => {
        deliveries += ms.length;
        if (failures < 2) {
          failures++;
          throw new Error('sink unavailable');
        }
        for (const m of ms) stored.add(decode(m).i);
      });
      await waitFor(() => stored.size >= 100, 60_000, 'all 100 after failures');
      await consumer.stop();
      expect(failures).toBe(2);
      expect(deliveries).toBeGreaterThan(100);
      expect([...stored].sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    });

    it('shares partitions between two consumers of one group', async () => {
      const topic = fresh('share');
      const group = fresh('g');
      await transport.ensureTopics([{ name: topic, partitions: 4 }]);
      const byConsumer: [Set<number>, Set<number>] = [new Set(), new Set()];
      const c1 = await start(group, topic, async (ms) => {
        for (const m of ms) byConsumer[0].add(decode(m).i);
      });
      const c2 = await start(group, topic, async (ms) => {
        for (const m of ms) byConsumer[1].add(decode(m).i);
      });
      // Let the group settle on both members before producing.
      await waitFor(async () => (await transport.lag(group, topic)) === 0, 30_000, 'group to join');
      await new Promise((r) => setTimeout(r, transport.kind === 'kafka' ? 4_000 : 100));
      await produce(topic, 400, 16);
      await waitFor(() => new Set([...byConsumer[0], ...byConsumer[1]]).size >= 400, 60_000, '400 messages across two consumers');
      await c1.stop();
      await c2.stop();
      expect(byConsumer[0].size).toBeGreaterThan(0);
      expect(byConsumer[1].size).toBeGreaterThan(0);
      expect(new Set([...byConsumer[0], ...byConsumer[1]]).size).toBe(400);
    });
  });
}
