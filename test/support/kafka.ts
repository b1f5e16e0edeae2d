/**
 * The Kafka suites run against a real broker (`npm run kafka:start`, which .ci/run does). A
 * missing broker is a failure with a clear message, never a silent skip.
 */
import { createConnection } from 'node:net';

export const KAFKA_BROKERS = (process.env.LATTICE_KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');

export async function requireKafkaBroker(): Promise<string[]> {
  const [host, port] = KAFKA_BROKERS[0]!.split(':');
  const reachable = await new Promise<boolean>((resolve) => {
    const socket = createConnection({ host: host!, port: Number(port) });
    socket.setTimeout(2_000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
  if (!reachable) {
    throw new Error(`No Kafka broker at ${KAFKA_BROKERS.join(',')}: the Kafka suites need a real broker. Start one with \`npm run kafka:start\` (or set LATTICE_KAFKA_BROKERS).`);
  }
  return KAFKA_BROKERS;
}
