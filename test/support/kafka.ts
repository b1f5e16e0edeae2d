/**
 * The Kafka suites run against a real broker. `npm test` brings one up itself: the global setup
 * (test/support/global-setup.ts) uses the broker at LATTICE_KAFKA_BROKERS when one answers, and
 * otherwise starts one with scripts/kafka.sh and stops it afterwards. It passes the brokers to
 * the test processes in LATTICE_KAFKA_BROKERS and what it did in LATTICE_TEST_KAFKA_SETUP.
 * A missing broker is a failure with a clear message, never a silent skip.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';

/** The repository root, where scripts/kafka.sh lives. */
export const KAFKA_ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const SCRIPT = join(KAFKA_ROOT, 'scripts/kafka.sh');

/** Set by the global setup: `reused`, `started` or `failed: <why>`. */
export const KAFKA_SETUP_ENV = 'LATTICE_TEST_KAFKA_SETUP';

export const KAFKA_BROKERS = parseBrokers(process.env.LATTICE_KAFKA_BROKERS ?? '127.0.0.1:9092');

export function parseBrokers(list: string): string[] {
  return list
    .split(',')
    .map((b) => b.trim())
    .filter((b) => b.length > 0);
}

/** `host:port` (IPv6 in brackets) → its parts. */
export function hostPort(broker: string): { host: string; port: number } {
  const match = /^\[?([^\]]*)\]?:(\d+)$/.exec(broker);
  if (!match) throw new Error(`not a host:port broker address: '${broker}'`);
  return { host: match[1]!, port: Number(match[2]) };
}

/** True when something accepts TCP connections at `host:port` within `timeoutMs`. */
export function tcpReachable(host: string, port: number, timeoutMs = 2_000): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const socket = createConnection({ host, port });
    socket.setTimeout(timeoutMs);
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
}

/**
 * Whether the brokers answer as Kafka (an admin client lists the topics) within `timeoutMs`:
 * undefined when they do, the last error's message otherwise.
 */
export async function kafkaAnswers(brokers: readonly string[], timeoutMs: number): Promise<string | undefined> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no attempt';
  while (Date.now() < deadline) {
    const kafka = new Kafka({ clientId: 'lattice-test-probe', brokers: [...brokers], connectionTimeout: 1_000, requestTimeout: 3_000, retry: { retries: 0 }, logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    try {
      await admin.connect();
      await admin.listTopics();
      return undefined;
    } catch (cause) {
      last = (cause as Error).message;
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return last;
}

export async function requireKafkaBroker(): Promise<string[]> {
  const { host, port } = hostPort(KAFKA_BROKERS[0]!);
  if (!(await tcpReachable(host, port))) {
    const setup = process.env[KAFKA_SETUP_ENV];
    const why = setup?.startsWith('failed') ? ` The test setup could not start one (${setup}).` : '';
    throw new Error(`No Kafka broker at ${KAFKA_BROKERS.join(',')}: the Kafka suites need a real broker.${why} \`npm test\` starts one when none is reachable (Java 17 + Maven needed); or start one with \`npm run kafka:start\`, or set LATTICE_KAFKA_BROKERS.`);
  }
  return KAFKA_BROKERS;
}

/** The process is alive and is a Kafka broker running exactly this server.properties. */
export function isBrokerOf(pid: number, propsFile: string): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0];
    return state !== 'Z' && argv.includes('kafka.Kafka') && argv.includes(propsFile);
  } catch {
    return false;
  }
}

/** Runs `scripts/kafka.sh COMMAND` with a bound; its output is collected, not printed. */
export function runKafkaScript(command: string, env: NodeJS.ProcessEnv, boundMs: number): Promise<{ ok: boolean; output: string }> {
  return new Promise((resolvePromise) => {
    const child = spawn('bash', [SCRIPT, command], { cwd: KAFKA_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => {
      output += `\nscripts/kafka.sh ${command} did not finish within ${boundMs / 1000} s; killed it\n`;
      child.kill('SIGKILL');
    }, boundMs);
    child.once('error', (cause) => {
      clearTimeout(timer);
      resolvePromise({ ok: false, output: `${output}\ncannot run bash ${SCRIPT}: ${cause.message}\n` });
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ ok: code === 0, output });
    });
  });
}

/** The pid in a pid file (a broker's, an owner's), if the file holds one. */
export function readPid(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}
