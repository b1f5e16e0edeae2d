/**
 * A private Kafka broker for fault tests: its own free ports and temporary state dir (a
 * scripts/kafka.sh instance, sharing only the jars), so a test can `kill -9` it and bring it
 * back without touching the shared broker other suites use.
 *
 *   const broker = await FaultBroker.start();
 *   ... broker.brokers ...            // ['127.0.0.1:PORT']
 *   await broker.kill9();             // SIGKILL: no clean shutdown, the data stays
 *   await broker.restart();           // same ports, same data dir; waits until it answers
 *   await broker.stop();              // SIGTERM, then the state dir is removed (final)
 *
 * Every wait is bounded (`startTimeoutMs`), and a broker is never left behind: `stop()` in the
 * test's afterAll, a process 'exit' hook (SIGKILL + remove) for a worker that ends without it,
 * and, for a worker that was itself killed, the next `FaultBroker.start()` reaps brokers whose
 * owning process is gone.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isBrokerOf, kafkaAnswers, readPid, runKafkaScript as runScript, tcpReachable } from './kafka.ts';
import { processIsAlive } from '../../core/process.ts';

const STATE_PREFIX = 'lattice-fault-broker-';
const OWNER_FILE = 'owner.pid';

export interface FaultBrokerOptions {
  /** Bound on each start or restart, readiness included (default 90 s). */
  readonly startTimeoutMs?: number;
}

type Phase = 'running' | 'killed' | 'stopped' | 'disposed';

const live = new Set<FaultBroker>();
let exitHookInstalled = false;

export class FaultBroker {
  private phase: Phase = 'stopped';

  private constructor(
    readonly port: number,
    readonly controllerPort: number,
    readonly stateDir: string,
    private readonly startTimeoutMs: number,
  ) {}

  /** Starts a new broker on free loopback ports in a fresh temporary state dir. */
  static async start(options: FaultBrokerOptions = {}): Promise<FaultBroker> {
    reapOrphans();
    installExitHook();
    const [port, controllerPort] = await freePorts(2);
    const stateDir = mkdtempSync(join(tmpdir(), STATE_PREFIX));
    writeFileSync(join(stateDir, OWNER_FILE), String(process.pid));
    const broker = new FaultBroker(port!, controllerPort!, stateDir, options.startTimeoutMs ?? 90_000);
    live.add(broker);
    try {
      await broker.launch();
    } catch (cause) {
      await broker.stop();
      throw cause;
    }
    return broker;
  }

  /** Bootstrap addresses for a client. */
  get brokers(): string[] {
    return [`127.0.0.1:${this.port}`];
  }

  get running(): boolean {
    return this.phase === 'running';
  }

  /** The broker's process id, while it runs. */
  get pid(): number | undefined {
    const pid = readPid(join(this.stateDir, 'broker.pid'));
    return pid !== undefined && isBrokerOf(pid, this.propsFile) ? pid : undefined;
  }

  /** SIGKILL, as `kill -9` does: returns once the process is gone and the port is closed. */
  async kill9(): Promise<void> {
    this.assertUsable('kill9');
    const result = await runScript('kill', this.env(), 30_000);
    if (!result.ok) throw new Error(`kill -9 of the fault broker on port ${this.port} failed:\n${result.output}`);
    await this.waitPortClosed(10_000);
    this.phase = 'killed';
  }

  /**
   * Brings the broker back on the same ports with the same data dir (after `kill9`, or a
   * graceful bounce when it runs), and waits until it answers as Kafka.
   */
  async restart(): Promise<void> {
    this.assertUsable('restart');
    if (this.phase === 'running') await this.shutdown();
    await this.launch();
  }

  /** Stops the broker (SIGTERM; SIGKILL if it lingers) and removes its state dir. Idempotent. */
  async stop(): Promise<void> {
    if (this.phase === 'disposed') return;
    try {
      if (this.pid !== undefined) await this.shutdown();
    } finally {
      this.dispose();
    }
  }

  private get propsFile(): string {
    return join(this.stateDir, 'server.properties');
  }

  private env(): NodeJS.ProcessEnv {
    return {
      ...process.env,
      LATTICE_KAFKA_PORT: String(this.port),
      LATTICE_KAFKA_CONTROLLER_PORT: String(this.controllerPort),
      LATTICE_KAFKA_STATE_DIR: this.stateDir,
      LATTICE_KAFKA_DATA_DIR: join(this.stateDir, 'data'),
      LATTICE_KAFKA_START_TIMEOUT_S: String(Math.ceil(this.startTimeoutMs / 1000)),
    };
  }

  private async launch(): Promise<void> {
    const deadline = Date.now() + this.startTimeoutMs;
    // The script bounds its own wait; this bound also covers a jar fetch that hangs.
    const result = await runScript('start', this.env(), this.startTimeoutMs + 5_000);
    if (!result.ok) throw new Error(`fault broker did not start on 127.0.0.1:${this.port} (state ${this.stateDir}):\n${result.output}`);
    this.phase = 'running';
    const problem = await kafkaAnswers(this.brokers, Math.max(1_000, deadline - Date.now()));
    if (problem !== undefined) throw new Error(`fault broker on 127.0.0.1:${this.port} started but did not answer within ${this.startTimeoutMs} ms: ${problem}`);
  }

  private async shutdown(): Promise<void> {
    const result = await runScript('stop', this.env(), 60_000);
    if (!result.ok) throw new Error(`stopping the fault broker on port ${this.port} failed:\n${result.output}`);
    this.phase = 'stopped';
  }

  private dispose(): void {
    killNow(this);
    this.phase = 'disposed';
    live.delete(this);
  }

  private assertUsable(what: string): void {
    if (this.phase === 'disposed') throw new Error(`fault broker on port ${this.port}: ${what}() after stop()`);
  }

  private async waitPortClosed(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (await tcpReachable('127.0.0.1', this.port, 500)) {
      if (Date.now() > deadline) throw new Error(`port ${this.port} still open ${timeoutMs} ms after kill -9`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** Synchronous: SIGKILL the broker if it still runs, remove the state dir. */
function killNow(broker: { stateDir: string }): void {
  killBrokerIn(broker.stateDir);
  rmSync(broker.stateDir, { recursive: true, force: true });
}

function killBrokerIn(stateDir: string): void {
  const pid = readPid(join(stateDir, 'broker.pid'));
  if (pid !== undefined && isBrokerOf(pid, join(stateDir, 'server.properties'))) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const broker of live) killNow(broker);
    live.clear();
  });
}

/**
 * Kills and removes the fault brokers of test processes that were killed before they could clean
 * up (their owner pid is gone). `FaultBroker.start()` calls it; never touches any other broker.
 */
export function reapOrphans(): void {
  let names: string[];
  try {
    names = readdirSync(tmpdir()).filter((n) => n.startsWith(STATE_PREFIX));
  } catch {
    return;
  }
  for (const name of names) {
    const dir = join(tmpdir(), name);
    const owner = readPid(join(dir, OWNER_FILE));
    if (owner === undefined || owner === process.pid || processIsAlive(owner)) continue;
    killBrokerIn(dir);
    rmSync(dir, { recursive: true, force: true });
  }
}


/** Distinct free loopback ports (held open together while chosen, so they differ). */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}
