/**
 * Throughput and commit latency of the real-process cluster over TCP on loopback: PBFT with 4
 * processes, EPaxos with 5, each under ~10 s of closed-loop load from 16 clients (one load process),
 * with the default NDJSON trace on, as `lattice cluster up` runs it. Latency is client-observed,
 * submit to accepted reply (PBFT: f+1 matching replies), exact nearest-rank percentiles.
 *
 * Everything (nodes and load generator) shares this machine's cores, so the numbers measure the
 * whole system on one host, not a network. Wall-clock throughput on a shared 2-core machine is
 * noisy, so each case also reports CPU time per operation (user + system, from /proc for the
 * node processes and process.cpuUsage() for the load generator, over the measured window). It
 * still moves with machine load (a starved cluster coalesces fewer frames per write and forms
 * smaller batches, so each operation costs more), so compare interleaved runs, by median.
 *
 * Knobs: LATTICE_BENCH_TCP_MS (load duration per protocol), LATTICE_BENCH_TCP_CLIENTS,
 * LATTICE_BENCH_TCP_TRACE (ndjson | off | both: on, then off with metrics labelled `_trace_off`),
 * LATTICE_BENCH_TCP_BATCH (PBFT batchSizeMax; default: the protocol's), LATTICE_BENCH_TCP_CASES (e.g. `pbft` or `epaxos`),
 * LATTICE_BENCH_TCP_PROFILE_DIR (node processes write V8 CPU profiles there on exit).
 *   node --import tsx bench/cluster-tcp.ts   (or call benchClusterTcp() from bench/run.ts)
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCluster } from '../cluster/tcp/cluster-manager.ts';
import { runLoad } from '../cluster/tcp/load.ts';
import type { TraceMode } from '../cluster/tcp/node-args.ts';
import type { ProtocolOptions } from '../cluster/protocol.ts';

interface BenchCase {
  readonly protocol: 'pbft' | 'epaxos';
  readonly nodes: number;
}

const CASES: readonly BenchCase[] = [
  { protocol: 'pbft', nodes: 4 },
  { protocol: 'epaxos', nodes: 5 },
];

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on Linux for decades). */
const USER_HZ = 100;

interface CpuMs {
  readonly user: number;
  readonly system: number;
}

/** User and system CPU of a process so far, ms; null when /proc cannot tell (not Linux, gone). */
function processCpuMs(pid: number): CpuMs | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name (which may contain spaces): utime is field 14.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return Number.isFinite(utime) && Number.isFinite(stime) ? { user: (utime * 1000) / USER_HZ, system: (stime * 1000) / USER_HZ } : null;
  } catch {
    return null;
  }
}

function clusterCpuMs(pids: readonly number[]): CpuMs | null {
  let user = 0;
  let system = 0;
  for (const pid of pids) {
    const ms = processCpuMs(pid);
    if (ms === null) return null;
    user += ms.user;
    system += ms.system;
  }
  return { user, system };
}

function selfCpuMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

const round = (x: number, digits: number): number => Math.round(x * 10 ** digits) / 10 ** digits;

export async function benchClusterTcp(): Promise<Record<string, number | string>> {
  const durationMs = Number(process.env.LATTICE_BENCH_TCP_MS ?? 10_000);
  const clients = Number(process.env.LATTICE_BENCH_TCP_CLIENTS ?? 16);
  const traceSetting = process.env.LATTICE_BENCH_TCP_TRACE ?? 'ndjson';
  // `both`: every case with the trace on (the unlabelled metrics) and off (suffix `_trace_off`).
  const traceModes: readonly TraceMode[] = traceSetting === 'both' ? ['ndjson', 'off'] : [traceSetting as TraceMode];
  const batch = process.env.LATTICE_BENCH_TCP_BATCH;
  const wantedCases = process.env.LATTICE_BENCH_TCP_CASES?.split(',');
  const options: Partial<ProtocolOptions> = batch === undefined ? {} : { batchSizeMax: Number(batch) };
  const metrics: Record<string, number | string> = { tcp_trace: traceSetting, tcp_clients: clients };
  if (batch !== undefined) metrics.tcp_batch_size_max = Number(batch);
  for (const { protocol, nodes } of CASES) {
    if (wantedCases !== undefined && !wantedCases.includes(protocol)) continue;
    for (const trace of traceModes) {
      const label = traceModes.length > 1 && trace === 'off' ? '_trace_off' : '';
      await benchCase(protocol, nodes, trace, label);
    }
  }
  return metrics;

  async function benchCase(protocol: BenchCase['protocol'], nodes: number, trace: TraceMode, label: string): Promise<void> {
    const runDir = mkdtempSync(join(tmpdir(), `lattice-bench-tcp-${protocol}-`));
    const profileDir = process.env.LATTICE_BENCH_TCP_PROFILE_DIR;
    const nodeExecArgv = profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`];
    const cluster = await startCluster({ protocol, nodes, runDir, trace, options, nodeExecArgv });
    try {
      const warmupMs = 1000;
      const pids = cluster.info.pids;
      let nodesCpuAtStart: CpuMs | null = null;
      let loadCpuAtStart = 0;
      // CPU is sampled over the same window as throughput: from the end of warm-up to the end.
      const sampleStart = setTimeout(() => {
        nodesCpuAtStart = clusterCpuMs(pids);
        loadCpuAtStart = selfCpuMs();
      }, warmupMs);
      const result = await runLoad({
        clusterFile: cluster.clusterFile,
        clients,
        durationMs,
        warmupMs,
        keys: 1000,
        readRatio: 0.5,
        conflictRate: 0.02,
        protocolOptions: options,
      });
      clearTimeout(sampleStart);
      const nodesCpuAtEnd = clusterCpuMs(pids);
      const loadCpuMs = selfCpuMs() - loadCpuAtStart;
      metrics[`${protocol}${label}_tcp_ops_per_s`] = result.ops_per_s;
      metrics[`${protocol}${label}_tcp_commit_ms_p50`] = result.latency_ms.p50;
      metrics[`${protocol}${label}_tcp_commit_ms_p90`] = result.latency_ms.p90;
      metrics[`${protocol}${label}_tcp_commit_ms_p99`] = result.latency_ms.p99;
      metrics[`${protocol}${label}_tcp_commit_ms_max`] = result.latency_ms.max;
      metrics[`${protocol}${label}_tcp_errors`] = result.errors;
      if (nodesCpuAtStart !== null && nodesCpuAtEnd !== null && result.ops > 0) {
        // The drain after the window adds a little CPU for few operations: an upper bound per op.
        const start: CpuMs = nodesCpuAtStart;
        const nodesUserMs = nodesCpuAtEnd.user - start.user;
        const nodesSystemMs = nodesCpuAtEnd.system - start.system;
        const nodesCpuMs = nodesUserMs + nodesSystemMs;
        metrics[`${protocol}${label}_tcp_nodes_cpu_us_per_op`] = round((nodesCpuMs * 1000) / result.ops, 1);
        // Kernel time is mostly the loopback TCP path (one send per socket write, ACKs, wake-ups).
        metrics[`${protocol}${label}_tcp_nodes_system_cpu_share`] = round(nodesSystemMs / Math.max(1, nodesCpuMs), 2);
        metrics[`${protocol}${label}_tcp_load_cpu_us_per_op`] = round((loadCpuMs * 1000) / result.ops, 1);
        metrics[`${protocol}${label}_tcp_cpu_utilisation`] = round((nodesCpuMs + loadCpuMs) / result.duration_ms, 2);
      }
    } finally {
      await cluster.stop();
      rmSync(runDir, { recursive: true, force: true });
    }
  }
}

if (process.argv.some((arg) => arg.endsWith('bench/cluster-tcp.ts'))) {
  const metrics = await benchClusterTcp();
  process.stdout.write(JSON.stringify(metrics, null, 2) + '\n');
}
