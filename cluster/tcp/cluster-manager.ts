/**
 * Starts a cluster of replica processes on one host, waits until every node answers a status
 * query with its full peer mesh connected, and records the cluster in `<runDir>/cluster.json`
 * (ports, pids, protocol) so `lattice cluster load` / `cluster down` in another process can find
 * it. Each node's stdout and stderr go to `<runDir>/node-<i>.log`, its trace to
 * `<runDir>/node-<i>.ndjson`. Nodes listen on loopback unless `listenHost` says otherwise.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { systemClock } from '../../core/clock.ts';
import { LatticeError } from '../../core/errors.ts';
import { processIsAlive } from '../../core/process.ts';
import { DEFAULT_PROTOCOL_OPTIONS, type ProtocolOptions } from '../protocol.ts';
import { queryStatus } from './admin-client.ts';
import { resolveConnectionLimits, type ConnectionLimits } from './limits.ts';
import { SECRET_FILE_ENV, formatNodeArgs, type TraceMode } from './node-args.ts';
import { loadProtocol, type TcpProtocolName } from './protocols.ts';
import { readClusterSecret } from './secret.ts';
import type { NodeStatus } from './wire.ts';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const NODE_MAIN = fileURLToPath(new URL('./node-main.ts', import.meta.url));
export const CLUSTER_FILE_NAME = 'cluster.json';
export const DEFAULT_CLUSTER_BASE_DIR = join('.lattice', 'cluster');

export interface StartClusterOptions {
  readonly protocol: TcpProtocolName;
  readonly nodes: number;
  /** Node i listens on basePort + i; 0 or absent: pick free ports. */
  readonly basePort?: number;
  /** The address every node listens on; default 127.0.0.1, so nothing is reachable from other
   * hosts unless asked for (e.g. 0.0.0.0). */
  readonly listenHost?: string;
  /** Where nodes, clients and status queries reach the nodes; default the listen host, or
   * 127.0.0.1 when that is a wildcard address. */
  readonly host?: string;
  readonly runId?: string;
  /** Default `.lattice/cluster/<runId>` under the current directory. */
  readonly runDir?: string;
  readonly options?: Partial<ProtocolOptions>;
  readonly trace?: TraceMode;
  readonly traceSinkModule?: string;
  /** Connection limits for every node (limits.ts); default the defaults. */
  readonly limits?: Partial<ConnectionLimits>;
  /** Let the nodes outlive this process (`lattice cluster up`); default false. */
  readonly detached?: boolean;
  /** Nodes exit when this process does; default: true unless detached. */
  readonly exitWithParent?: boolean;
  readonly readyTimeoutMs?: number;
  /** Extra Node flags for every node process, e.g. `--cpu-prof` to profile a benchmark. */
  readonly nodeExecArgv?: readonly string[];
}

/** The contents of cluster.json. */
export interface ClusterFile {
  readonly version: 1;
  readonly run_id: string;
  readonly protocol: TcpProtocolName;
  readonly host: string;
  /** Absent in files written before the listen address was configurable (they used `host`). */
  readonly listen_host?: string;
  readonly nodes: number;
  readonly f: number;
  readonly ports: readonly number[];
  readonly pids: readonly number[];
  readonly run_dir: string;
  readonly secret_file: string;
  readonly started_at: string;
}

export interface ClusterHandle {
  readonly info: ClusterFile;
  readonly clusterFile: string;
  /** Status of every node that answers (a killed node is absent). */
  status(timeoutMs?: number): Promise<NodeStatus[]>;
  /** Kills one node at once (SIGKILL by default): a crash, for fault tests. */
  kill(node: number, signal?: NodeJS.Signals): Promise<void>;
  /** SIGTERM every node, SIGKILL whatever is still alive after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

export class ClusterStartError extends LatticeError {
  constructor(message: string, cause?: unknown) {
    super('TRANSPORT_UNAVAILABLE', message, { cause });
  }
}

/** Ports the OS reports free right now (bound to 0, then released); a small race is accepted. */
export async function findFreePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => new Promise<ReturnType<typeof createServer>>((ok, fail) => {
      const server = createServer();
      server.once('error', fail);
      server.listen(0, host, () => ok(server));
    })),
  );
  const ports = servers.map((s) => {
    const address = s.address();
    if (address === null || typeof address === 'string') throw new ClusterStartError('could not read a free port');
    return address.port;
  });
  await Promise.all(servers.map((s) => new Promise<void>((ok) => s.close(() => ok()))));
  return ports;
}

export function newRunId(protocol: string): string {
  const stamp = new Date(nowMs()).toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
  return `tcp-${protocol}-${stamp}-${randomBytes(3).toString('hex')}`;
}

export async function startCluster(opts: StartClusterOptions): Promise<ClusterHandle> {
  const protocol = await loadProtocol(opts.protocol);
  const n = opts.nodes;
  if (!Number.isInteger(n) || n < protocol.minReplicas) {
    throw new LatticeError('CONFIG_INVALID', `${opts.protocol} needs an integer number of nodes >= ${protocol.minReplicas}, got ${n}`);
  }
  const listenHost = opts.listenHost ?? '127.0.0.1';
  const host = opts.host ?? connectHostFor(listenHost);
  // Checked here too, so a bad limit fails `cluster up` at once rather than every node at start-up.
  resolveConnectionLimits(opts.limits);
  const runId = opts.runId ?? newRunId(opts.protocol);
  const runDir = resolve(opts.runDir ?? join(DEFAULT_CLUSTER_BASE_DIR, runId));
  mkdirSync(runDir, { recursive: true });
  const ports = opts.basePort ? Array.from({ length: n }, (_, i) => (opts.basePort as number) + i) : await findFreePorts(n, listenHost);
  const secretFile = join(runDir, 'secret');
  writeFileSync(secretFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  const options: ProtocolOptions = { ...DEFAULT_PROTOCOL_OPTIONS, ...opts.options };
  const children: ChildProcess[] = [];
  const exits = new Map<number, { code: number | null; signal: NodeJS.Signals | null }>();
  for (let node = 0; node < n; node++) {
    const log = openSync(join(runDir, `node-${node}.log`), 'a');
    const argv = formatNodeArgs({
      node,
      protocol: opts.protocol,
      ports,
      host,
      listenHost,
      runId,
      runDir,
      trace: opts.trace ?? 'ndjson',
      traceSinkModule: opts.traceSinkModule ?? null,
      options,
      limits: opts.limits ?? {},
      exitWithParent: (opts.exitWithParent ?? !opts.detached) ? process.pid : null,
    });
    const child = spawn(process.execPath, [...(opts.nodeExecArgv ?? []), '--import', 'tsx', NODE_MAIN, ...argv], {
      cwd: REPO_ROOT,
      stdio: ['ignore', log, log],
      detached: opts.detached ?? false,
      env: { ...process.env, [SECRET_FILE_ENV]: secretFile },
    });
    closeSync(log);
    child.on('exit', (code, signal) => exits.set(node, { code, signal }));
    if (opts.detached) child.unref();
    children.push(child);
  }
  const pids = children.map((c) => c.pid ?? -1);
  const info: ClusterFile = {
    version: 1,
    run_id: runId,
    protocol: opts.protocol,
    host,
    listen_host: listenHost,
    nodes: n,
    f: protocol.faultTolerance(n),
    ports,
    pids,
    run_dir: runDir,
    secret_file: secretFile,
    started_at: new Date(nowMs()).toISOString(),
  };
  const clusterFile = join(runDir, CLUSTER_FILE_NAME);
  writeFileSync(clusterFile, JSON.stringify(info, null, 2) + '\n');
  // What the nodes will read: the secret file, unless the environment overrides it for them too.
  const clusterSecret = readClusterSecret(secretFile);
  const handle = createHandle(info, clusterFile, children, clusterSecret);
  try {
    await waitUntilReady(info, clusterSecret, exits, opts.readyTimeoutMs ?? 30_000);
  } catch (error) {
    await handle.stop(500);
    throw error;
  }
  return handle;
}

/** Where to reach a node listening on `listenHost`: itself, or loopback for a wildcard. */
export function connectHostFor(listenHost: string): string {
  return listenHost === '0.0.0.0' || listenHost === '::' || listenHost === '' ? '127.0.0.1' : listenHost;
}

async function waitUntilReady(info: ClusterFile, clusterSecret: string, exits: ReadonlyMap<number, { code: number | null; signal: NodeJS.Signals | null }>, timeoutMs: number): Promise<void> {
  const deadline = nowMs() + timeoutMs;
  const ready = new Set<number>();
  while (ready.size < info.nodes) {
    for (const [node, exit] of exits) {
      throw new ClusterStartError(`node ${node} exited during start-up (code ${exit.code}, signal ${exit.signal}); see ${logTail(info.run_dir, node)}`);
    }
    if (nowMs() > deadline) {
      const missing = info.ports.map((_, i) => i).filter((i) => !ready.has(i));
      throw new ClusterStartError(`nodes ${missing.join(', ')} not ready within ${timeoutMs} ms; see ${join(info.run_dir, 'node-<i>.log')}`);
    }
    await Promise.all(
      info.ports.map(async (port, node) => {
        if (ready.has(node)) return;
        try {
          const status = await queryStatus({ host: info.host, port, node, clusterSecret }, 500);
          if (status.connectedPeers === info.nodes - 1) ready.add(node);
        } catch {
          // not listening yet
        }
      }),
    );
    if (ready.size < info.nodes) await sleep(100);
  }
}

function logTail(runDir: string, node: number): string {
  const path = join(runDir, `node-${node}.log`);
  if (!existsSync(path)) return path;
  const text = readFileSync(path, 'utf8').trim().split('\n').slice(-5).join(' | ');
  return `${path}: ${text}`;
}

function createHandle(info: ClusterFile, clusterFile: string, children: readonly ChildProcess[], clusterSecret: string): ClusterHandle {
  return {
    info,
    clusterFile,
    status: (timeoutMs = 1000) => statusOf(info, timeoutMs, clusterSecret),
    async kill(node, signal = 'SIGKILL') {
      const child = children[node];
      if (child === undefined) throw new RangeError(`no node ${node}`);
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
      child.kill(signal);
      await exited;
    },
    async stop(graceMs = 3000) {
      await Promise.all(children.map((child) => stopChild(child, graceMs)));
    },
  };
}

async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Status of every node that answers; the admin hello's key derives from the cluster's secret. */
export async function statusOf(info: ClusterFile, timeoutMs = 1000, clusterSecret = readClusterSecret(info.secret_file)): Promise<NodeStatus[]> {
  const results = await Promise.all(info.ports.map((port, node) => queryStatus({ host: info.host, port, node, clusterSecret }, timeoutMs).catch(() => null)));
  return results.filter((s): s is NodeStatus => s !== null);
}

export function readClusterFile(path: string): ClusterFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new LatticeError('NOT_FOUND', `no readable cluster file at ${path}`, { cause: error });
  }
  const file = parsed as Partial<ClusterFile>;
  if (file.version !== 1 || !Array.isArray(file.ports) || !Array.isArray(file.pids) || typeof file.protocol !== 'string') {
    throw new LatticeError('CONFIG_INVALID', `${path} is not a Lattice cluster file`);
  }
  return file as ClusterFile;
}

/**
 * Stops the processes a cluster file names, from any process (`lattice cluster down`). A pid is
 * only signalled if, where /proc exists, its command line is still that run's node: pids are
 * reused, and a stale cluster.json must not kill an unrelated process.
 */
export async function stopClusterFromFile(info: ClusterFile, graceMs = 3000): Promise<{ stopped: number[]; alreadyGone: number[] }> {
  const stopped: number[] = [];
  const alreadyGone: number[] = [];
  const live = info.pids.filter((pid) => {
    const ours = pid > 0 && processIsAlive(pid) && isNodeOfRun(pid, info.run_id);
    if (!ours) alreadyGone.push(pid);
    return ours;
  });
  for (const pid of live) signal(pid, 'SIGTERM');
  const deadline = nowMs() + graceMs;
  while (live.some(processIsAlive) && nowMs() < deadline) await sleep(50);
  for (const pid of live) {
    if (processIsAlive(pid)) signal(pid, 'SIGKILL');
    stopped.push(pid);
  }
  while (live.some(processIsAlive) && nowMs() < deadline + 2000) await sleep(50);
  return { stopped, alreadyGone };
}


function isNodeOfRun(pid: number, runId: string): boolean {
  const path = `/proc/${pid}/cmdline`;
  if (!existsSync('/proc/self/cmdline')) return true;
  try {
    const cmdline = readFileSync(path, 'utf8').split('\0');
    return cmdline.some((a) => a.endsWith('node-main.ts')) && cmdline.includes(runId);
  } catch {
    return false;
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

const nowMs = (): number => systemClock.nowUs() / 1000;

function sleep(ms: number): Promise<void> {
  return new Promise((ok) => setTimeout(ok, ms));
}
