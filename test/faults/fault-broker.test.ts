/**
 * The fault suite's private broker (test/support/fault-broker.ts): a topic's messages survive
 * `kill -9` + restart, and a broker is never left behind — not by `stop()`, not by a test process
 * that exits without stopping it, not by one that is itself killed.
 *
 * Short variant in `npm test` (one kill -9); `npm run test:faults` (LATTICE_FAULTS=full) kills
 * and bounces it five times, with more data.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KafkaTransport } from '../../collector/transport/kafka.ts';
import type { IncomingMessage } from '../../collector/transport/transport.ts';
import { FaultBroker, reapOrphans } from '../support/fault-broker.ts';
import { isBrokerOf, KAFKA_ROOT, tcpReachable } from '../support/kafka.ts';
import { waitFor } from '../support/transport-contract.ts';
import { processIsAlive } from '../../core/process.ts';

const FULL = process.env.LATTICE_FAULTS === 'full';
/** Outages, each after a round of produced messages: kill -9 (and, in the long variant, graceful bounces between them). */
const OUTAGES: readonly ('kill9' | 'bounce')[] = FULL ? ['kill9', 'bounce', 'kill9', 'bounce', 'kill9'] : ['kill9'];
const PER_ROUND = FULL ? 20_000 : 3_000;
const KEYS = 6;
const PARTITIONS = 3;


/**
 * A separate Node process that starts a FaultBroker, prints `pid stateDir` and then either exits
 * without stopping it (`exit`) or waits to be killed (`hang`).
 */
function brokerChild(mode: 'exit' | 'hang'): Promise<{ child: ReturnType<typeof spawn>; pid: number; stateDir: string; exited: Promise<number | null> }> {
  const code = `
    const { FaultBroker } = await import(${JSON.stringify(new URL('../support/fault-broker.ts', import.meta.url).href)});
    const b = await FaultBroker.start();
    process.stdout.write(b.pid + ' ' + b.stateDir + '\\n');
    if (${JSON.stringify(mode)} === 'exit') process.exit(0); else setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: KAFKA_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = /^(\d+) (\S+)\n/.exec(out);
      if (line) resolve({ child, pid: Number(line[1]), stateDir: line[2]!, exited });
    });
    void exited.then((c) => reject(new Error(`broker child exited (${c}) before reporting its broker: ${err}`)));
  });
}

describe('fault broker (a private Kafka instance)', () => {
  let broker: FaultBroker;
  let transport: KafkaTransport;

  beforeAll(async () => {
    broker = await FaultBroker.start();
    transport = new KafkaTransport({ brokers: broker.brokers, clientId: 'lattice-fault-broker-test', producerRetryMs: 60_000 });
  });
  afterAll(async () => {
    await transport?.close();
    await broker?.stop();
  });

  it(`keeps a topic's messages through ${OUTAGES.join(', ')} (${PER_ROUND} messages before each)`, { timeout: FULL ? 600_000 : 120_000 }, async () => {
    expect(broker.brokers[0]).not.toBe('127.0.0.1:9092');
    const topic = `faults.broker.${randomUUID().slice(0, 8)}`;
    await transport.ensureTopics([{ name: topic, partitions: PARTITIONS }]);

    let sent = 0;
    for (const outage of OUTAGES) {
      const producer = await transport.createProducer();
      for (let i = 0; i < PER_ROUND; i += 500) {
        const messages = Array.from({ length: Math.min(500, PER_ROUND - i) }, () => {
          const n = sent++;
          return { key: `node-${n % KEYS}`, value: JSON.stringify({ n }) };
        });
        await producer.send(topic, messages);
      }
      await producer.close();

      const before = broker.pid!;
      expect(isBrokerOf(before, `${broker.stateDir}/server.properties`)).toBe(true);
      if (outage === 'kill9') {
        await broker.kill9();
        expect(broker.running).toBe(false);
        expect(processIsAlive(before)).toBe(false);
        expect(await tcpReachable('127.0.0.1', broker.port, 500)).toBe(false);
      }
      await broker.restart(); // after kill9: start again; while running: a graceful bounce
      expect(broker.running).toBe(true);
      expect(processIsAlive(before)).toBe(false);
      expect(broker.pid).not.toBe(before);
    }

    // Read everything back from the beginning with a fresh group.
    const seen: { key: string | null; n: number }[] = [];
    const consumer = await transport.createConsumer({ groupId: `g-${randomUUID().slice(0, 8)}`, topics: [topic], fromBeginning: true });
    await consumer.run(async (batch) => {
      for (const m of batch.messages as IncomingMessage[]) seen.push({ key: m.key, n: (JSON.parse(m.value.toString()) as { n: number }).n });
    });
    await waitFor(() => seen.length >= sent, 60_000, `${sent} messages back`);
    await new Promise((r) => setTimeout(r, 300)); // anything extra would be a duplicate
    await consumer.stop();

    expect(seen.length).toBe(sent);
    expect(new Set(seen.map((s) => s.n)).size).toBe(sent);
    // Per key, the order they were sent in.
    for (let k = 0; k < KEYS; k++) {
      const ns = seen.filter((s) => s.key === `node-${k}`).map((s) => s.n);
      const expected = Array.from({ length: sent }, (_, n) => n).filter((n) => n % KEYS === k);
      expect(ns).toEqual(expected);
    }
  });

  it('leaves nothing behind from a test process that exits without stop(), or that is killed', { timeout: 120_000 }, async () => {
    const [exiting, hanging] = await Promise.all([brokerChild('exit'), brokerChild('hang')]);
    // Exits without stop(): its exit hook killed the broker and removed the state dir.
    expect(await exiting.exited).toBe(0);
    // SIGKILL is delivered at once, but the orphan is reaped by init a moment later.
    await waitFor(() => !processIsAlive(exiting.pid), 10_000, 'the exiting process\'s broker to die');
    expect(existsSync(exiting.stateDir)).toBe(false);

    // Killed outright, so it cannot clean up: its broker outlives it until the next
    // FaultBroker.start() (here the reaper it calls) removes it.
    expect(processIsAlive(hanging.pid)).toBe(true);
    hanging.child.kill('SIGKILL');
    await hanging.exited;
    expect(processIsAlive(hanging.pid)).toBe(true);
    reapOrphans();
    await waitFor(() => !processIsAlive(hanging.pid), 10_000, 'the orphaned broker to die');
    expect(existsSync(hanging.stateDir)).toBe(false);
    // Ours, still owned by a live process, was left alone.
    expect(broker.running && processIsAlive(broker.pid!)).toBe(true);
  });

  it('stop() stops the broker and removes its state dir; the instance is then unusable', async () => {
    const pid = broker.pid!;
    await broker.stop();
    expect(processIsAlive(pid)).toBe(false);
    expect(existsSync(broker.stateDir)).toBe(false);
    expect(await tcpReachable('127.0.0.1', broker.port, 500)).toBe(false);
    await expect(broker.kill9()).rejects.toThrow(/after stop/);
    await broker.stop(); // idempotent
  });
});
