import { describe, expect, it } from 'vitest';
import { decodeMessage } from '../../collector/decode.ts';
import { BatchingProducerSink, ProducerSink, recordKey } from '../../collector/producer-sink.ts';
import type { OutgoingMessage, TransportProducer } from '../../collector/transport/transport.ts';
import { TransportError } from '../../core/errors.ts';
import { makeRecords } from '../support/records.ts';

/** A producer whose sends complete only when the test says so. */
function gatedProducer() {
  const sends: OutgoingMessage[][] = [];
  const gates: (() => void)[] = [];
  let fail = false;
  const producer: TransportProducer = {
    send: (_topic, messages) =>
      new Promise<void>((resolve, reject) => {
        sends.push([...messages]);
        gates.push(() => (fail ? reject(new TransportError('TRANSPORT_FAILED', 'broker gone', { retriable: true })) : resolve()));
      }),
    close: async () => undefined,
  };
  return { producer, sends, release: () => gates.shift()?.(), failNext: () => (fail = true) };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('BatchingProducerSink', () => {
  it('batches small writes, keys by run and node, keeps order, and flushes the rest', async () => {
    const { producer, sends, release } = gatedProducer();
    const sink = new BatchingProducerSink(producer, { topic: 't', batchRecordsMax: 100, lingerMs: 10_000, recordsPerMessageMax: 1 });
    const records = makeRecords('run-p', 250, 3);
    for (let i = 0; i < records.length; i += 5) await sink.write(records.slice(i, i + 5));
    expect(sends.length).toBe(1);
    expect(sends[0]!.length).toBe(100);
    const flushed = sink.flush();
    for (let i = 0; i < 5; i++) {
      release();
      await tick();
    }
    await flushed;
    expect(sends.map((s) => s.length)).toEqual([100, 100, 50]);
    const all = sends.flat();
    expect(all.map((m) => m.value)).toEqual(records.map((r) => JSON.stringify(r)));
    expect(all[4]!.key).toBe(recordKey(records[4]!));
    expect(sink.recordsSent).toBe(250);
  });

  it('bundles one node\'s records into NDJSON messages, in order, and the collector decodes them back', async () => {
    const { producer, sends, release } = gatedProducer();
    const sink = new BatchingProducerSink(producer, { topic: 't', batchRecordsMax: 1_000, recordsPerMessageMax: 10 });
    const records = makeRecords('run-b', 90, 3);
    await sink.write(records);
    const flushed = sink.flush();
    release();
    await flushed;
    const messages = sends.flat();
    expect(messages.length).toBe(9);
    for (const node of [0, 1, 2]) {
      const ofNode = messages.filter((m) => m.key === `run-b/${node}`).flatMap((m) => decodeMessage(Buffer.from(m.value), 64 * 1024));
      expect(ofNode.map((d) => (d.ok && d.kind === 'transition' ? d.record.node_seq : -1))).toEqual(Array.from({ length: 30 }, (_, i) => i));
    }
  });

  it('applies backpressure: a write waits while the buffer is full, memory stays bounded', async () => {
    const { producer, release } = gatedProducer();
    const sink = new BatchingProducerSink(producer, { topic: 't', batchRecordsMax: 50, bufferedRecordsMax: 100, lingerMs: 10_000 });
    let done = false;
    const writing = sink.write(makeRecords('run-bp', 300)).then(() => (done = true));
    await tick();
    expect(done).toBe(false);
    expect(sink.recordsBuffered).toBeLessThanOrEqual(100);
    for (let i = 0; i < 10 && !done; i++) {
      release();
      await tick();
      expect(sink.recordsBuffered).toBeLessThanOrEqual(100);
    }
    await writing;
    expect(done).toBe(true);
  });

  it('a send that fails surfaces on the next write or flush', async () => {
    const { producer, release, failNext } = gatedProducer();
    const sink = new BatchingProducerSink(producer, { topic: 't', batchRecordsMax: 10 });
    await sink.write(makeRecords('run-f', 10));
    failNext();
    release();
    await tick();
    await expect(sink.flush()).rejects.toThrow('broker gone');
    await expect(sink.write(makeRecords('run-f', 1))).rejects.toThrow('broker gone');
  });
});

describe('ProducerSink', () => {
  it('sends each write at once, in chunks', async () => {
    const { producer, sends, release } = gatedProducer();
    const sink = new ProducerSink(producer, { topic: 't', sendRecordsMax: 40 });
    const writing = sink.write(makeRecords('run-s', 100));
    for (let i = 0; i < 3; i++) {
      await tick();
      release();
    }
    await writing;
    expect(sends.map((s) => s.length)).toEqual([40, 40, 20]);
  });
});
