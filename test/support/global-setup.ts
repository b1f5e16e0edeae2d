/**
 * Vitest global setup: `npm test` brings up the Kafka broker it needs.
 *
 * - A broker answers at LATTICE_KAFKA_BROKERS (default 127.0.0.1:LATTICE_KAFKA_PORT, i.e. 9092):
 *   it is used and left alone (never stopped).
 * - Nothing listens there: one broker is started with scripts/kafka.sh (fetching the jars with
 *   Maven first if needed) on that port — LATTICE_KAFKA_CONTROLLER_PORT (default port + 1) and
 *   LATTICE_KAFKA_STATE_DIR (default .kafka for 9092, .kafka/port-<port> otherwise) — and stopped
 *   at teardown. Only that broker: the pid it started, checked again before stopping.
 * - It cannot start one (a remote address, Java missing, LATTICE_KAFKA_AUTOSTART=0, ...): it says
 *   why and the run goes on; the Kafka suites then fail in `requireKafkaBroker` with that reason.
 *
 * One line on stdout says which of these happened. The brokers reach the test processes in
 * LATTICE_KAFKA_BROKERS, and what happened in LATTICE_TEST_KAFKA_SETUP.
 */
import { join, resolve } from 'node:path';
import { hostPort, isBrokerOf, KAFKA_ROOT, KAFKA_SETUP_ENV, kafkaAnswers, parseBrokers, readPid, runKafkaScript as runScript, tcpReachable } from './kafka.ts';

const ROOT = KAFKA_ROOT;
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);
/** Bound on `kafka.sh start`: a cold jar fetch (about 10 s, more on a slow network) plus the start. */
const START_BOUND_MS = 10 * 60_000;

const say = (line: string) => process.stdout.write(`[test setup] Kafka: ${line}\n`);

export default async function setup(): Promise<() => Promise<void>> {
  const noTeardown = async () => undefined;
  const portEnv = process.env.LATTICE_KAFKA_PORT;
  const brokers = parseBrokers(process.env.LATTICE_KAFKA_BROKERS ?? `127.0.0.1:${portEnv || '9092'}`);
  process.env.LATTICE_KAFKA_BROKERS = brokers.join(',');
  const failed = (why: string) => {
    process.env[KAFKA_SETUP_ENV] = `failed: ${why}`;
    say(`${why}; the Kafka suites will fail`);
    return noTeardown;
  };
  if (brokers.length === 0) return failed('LATTICE_KAFKA_BROKERS is empty');

  let parsed: { host: string; port: number }[];
  try {
    parsed = brokers.map(hostPort);
  } catch (cause) {
    return failed((cause as Error).message);
  }
  const reachable = await Promise.all(parsed.map(({ host, port }) => tcpReachable(host, port, 1_000)));
  if (reachable.some(Boolean)) {
    const problem = await kafkaAnswers(brokers, 20_000);
    if (problem !== undefined) return failed(`${brokers.join(',')} accepts connections but does not answer as a Kafka broker (${problem}); not starting another`);
    process.env[KAFKA_SETUP_ENV] = 'reused';
    say(`using the broker already running at ${brokers.join(',')} (left running)`);
    return noTeardown;
  }

  // Nothing there: start one, if it can be ours to start.
  const target = brokers.join(',');
  if (process.env.LATTICE_KAFKA_AUTOSTART === '0') return failed(`no broker at ${target} and LATTICE_KAFKA_AUTOSTART=0`);
  if (parsed.length !== 1 || !LOOPBACK.has(parsed[0]!.host)) return failed(`no broker at ${target}, and only a single loopback broker can be started here`);
  const { port } = parsed[0]!;
  if (portEnv && Number(portEnv) !== port) return failed(`no broker at ${target}, and LATTICE_KAFKA_PORT=${portEnv} disagrees with it`);
  const controllerPort = process.env.LATTICE_KAFKA_CONTROLLER_PORT || String(port + 1);
  const stateDir = resolve(process.env.LATTICE_KAFKA_STATE_DIR || (port === 9092 ? join(ROOT, '.kafka') : join(ROOT, '.kafka', `port-${port}`)));
  const env = { ...process.env, LATTICE_KAFKA_PORT: String(port), LATTICE_KAFKA_CONTROLLER_PORT: controllerPort, LATTICE_KAFKA_STATE_DIR: stateDir };
  const propsFile = join(stateDir, 'server.properties');
  const pidFile = join(stateDir, 'broker.pid');

  const pidBefore = readPid(pidFile);
  const t0 = Date.now();
  const start = await runScript('start', env, START_BOUND_MS);
  const pid = readPid(pidFile);
  const ours = pid !== undefined && pid !== pidBefore && isBrokerOf(pid, propsFile);
  if (!start.ok || !ours) {
    if (ours) await runScript('stop', env, 60_000); // started but not ready in time: ours to stop
    process.stderr.write(start.output);
    return failed(`no broker at ${target}, and starting one with scripts/kafka.sh failed (${start.ok ? 'no broker process recorded' : lastLine(start.output)}; state ${stateDir})`);
  }
  const problem = await kafkaAnswers(brokers, 30_000);
  if (problem !== undefined) {
    await runScript('stop', env, 60_000);
    process.stderr.write(start.output);
    return failed(`started a broker at ${target} but it does not answer (${problem})`);
  }
  process.env[KAFKA_SETUP_ENV] = 'started';
  say(`no broker at ${target}; started one with scripts/kafka.sh in ${((Date.now() - t0) / 1000).toFixed(1)} s (pid ${pid}, controller port ${controllerPort}, state ${stateDir}); it is stopped after the tests`);

  // A backstop if vitest exits without running the teardown.
  let stopped = false;
  const onExit = () => {
    if (!stopped && isBrokerOf(pid, propsFile)) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        /* gone */
      }
    }
  };
  process.once('exit', onExit);

  return async () => {
    process.off('exit', onExit);
    stopped = true;
    if (readPid(pidFile) !== pid || !isBrokerOf(pid, propsFile)) {
      say(`the broker started for the tests (pid ${pid}) is no longer running, or was replaced; nothing to stop`);
      return;
    }
    const stop = await runScript('stop', env, 60_000);
    say(stop.ok ? `stopped the broker started for the tests (pid ${pid})` : `stopping the broker started for the tests (pid ${pid}) failed: ${lastLine(stop.output)}`);
  };
}

function lastLine(output: string): string {
  const lines = output.trim().split('\n');
  return lines[lines.length - 1] ?? '';
}
