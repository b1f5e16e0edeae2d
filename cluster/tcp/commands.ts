/**
 * CLI-ready operations for `lattice cluster up | load | down | status`; each returns a plain
 * object for the CLI to print. `up` starts detached processes and records the run in
 * `<baseDir>/latest.json`, so `load`, `status` and `down` find the cluster without arguments.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { LatticeError } from '../../core/errors.ts';
import {
  DEFAULT_CLUSTER_BASE_DIR,
  readClusterFile,
  startCluster,
  statusOf,
  stopClusterFromFile,
  type StartClusterOptions,
} from './cluster-manager.ts';
import { runLoad, type LoadOptions, type LoadResult } from './load.ts';
import type { NodeStatus } from './wire.ts';

/** What `cluster up` passes on to startCluster (always detached: the nodes outlive the CLI),
 * plus where its runs and latest.json live. */
export interface ClusterUpOptions
  extends Pick<StartClusterOptions, 'protocol' | 'nodes' | 'basePort' | 'listenHost' | 'host' | 'limits' | 'runId' | 'runDir' | 'trace' | 'traceSinkModule' | 'options' | 'exitWithParent'> {
  /** Where runs and latest.json live; default `.lattice/cluster`. */
  readonly baseDir?: string;
}

export interface ClusterUpResult {
  readonly run_id: string;
  readonly protocol: string;
  readonly nodes: number;
  readonly f: number;
  readonly host: string;
  readonly listen_host: string;
  readonly ports: readonly number[];
  readonly pids: readonly number[];
  readonly cluster_file: string;
  readonly run_dir: string;
}

/** Which cluster a command is about: an explicit cluster.json, else the latest `up`. */
export interface ClusterRef {
  readonly clusterFile?: string;
  readonly baseDir?: string;
}

const latestPath = (baseDir: string | undefined): string => resolve(baseDir ?? DEFAULT_CLUSTER_BASE_DIR, 'latest.json');

export function resolveClusterFile(ref: ClusterRef = {}): string {
  if (ref.clusterFile !== undefined) return resolve(ref.clusterFile);
  const latest = latestPath(ref.baseDir);
  if (!existsSync(latest)) throw new LatticeError('NOT_FOUND', `no running cluster recorded in ${latest}: run \`lattice cluster up\` or pass a cluster file`);
  const { cluster_file: file } = JSON.parse(readFileSync(latest, 'utf8')) as { cluster_file: string };
  return file;
}

export async function clusterUp(opts: ClusterUpOptions): Promise<ClusterUpResult> {
  const baseDir = resolve(opts.baseDir ?? DEFAULT_CLUSTER_BASE_DIR);
  const { baseDir: _baseDir, ...start } = opts;
  const handle = await startCluster({
    ...start,
    runDir: opts.runDir ?? (opts.runId === undefined ? undefined : join(baseDir, opts.runId)),
    // Detached nodes outlive this process unless a caller (a test) ties them to it.
    detached: true,
  });
  const info = handle.info;
  mkdirSync(baseDir, { recursive: true });
  writeFileSync(join(baseDir, 'latest.json'), JSON.stringify({ run_id: info.run_id, cluster_file: handle.clusterFile }) + '\n');
  return {
    run_id: info.run_id,
    protocol: info.protocol,
    nodes: info.nodes,
    f: info.f,
    host: info.host,
    listen_host: info.listen_host ?? info.host,
    ports: info.ports,
    pids: info.pids,
    cluster_file: handle.clusterFile,
    run_dir: info.run_dir,
  };
}

export type ClusterLoadOptions = ClusterRef & Omit<LoadOptions, 'clusterFile' | 'ports'>;

export async function clusterLoad(opts: ClusterLoadOptions): Promise<LoadResult> {
  const { clusterFile: _file, baseDir: _base, ...load } = opts;
  return runLoad({ ...load, clusterFile: resolveClusterFile(opts), durationMs: opts.durationMs ?? (opts.ops === undefined ? 10_000 : undefined) });
}

export interface ClusterStatusResult {
  readonly run_id: string;
  readonly protocol: string;
  readonly nodes: readonly NodeStatus[];
  readonly unreachable: readonly number[];
}

export async function clusterStatus(ref: ClusterRef = {}): Promise<ClusterStatusResult> {
  const info = readClusterFile(resolveClusterFile(ref));
  const nodes = await statusOf(info);
  const answered = new Set(nodes.map((s) => s.node));
  return { run_id: info.run_id, protocol: info.protocol, nodes, unreachable: info.ports.map((_, i) => i).filter((i) => !answered.has(i)) };
}

export interface ClusterDownResult {
  readonly run_id: string;
  readonly stopped: readonly number[];
  readonly already_gone: readonly number[];
}

export async function clusterDown(ref: ClusterRef = {}): Promise<ClusterDownResult> {
  const file = resolveClusterFile(ref);
  const info = readClusterFile(file);
  const { stopped, alreadyGone } = await stopClusterFromFile(info);
  return { run_id: info.run_id, stopped, already_gone: alreadyGone };
}
