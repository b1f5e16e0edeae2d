/**
 * Throughput and commit latency of the real-process cluster over TCP on loopback: PBFT with 4
 * processes, EPaxos with 5, each under ~10 s of closed-loop load from 16 clients (one load process),
 * with the default NDJSON trace on, as `lattice cluster up` runs it. Latency is client-observed,
 * submit to accepted reply (PBFT: f+1 matching replies), exact nearest-rank percentiles.
 *
 * Everything (nodes and load generator) shares this machine's cores, so the numbers measure the
 * whole system on one host, not a network. Knobs: LATTICE_BENCH_TCP_MS (load duration per
 * protocol), LATTICE_BENCH_TCP_CLIENTS, LATTICE_BENCH_TCP_TRACE (ndjson | off).
 *   node --import tsx bench/cluster-tcp.ts   (or call benchClusterTcp() from bench/run.ts)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCluster } from '../cluster/tcp/cluster-manager.ts';
import { runLoad } from '../cluster/tcp/load.ts';
import type { TraceMode } from '../cluster/tcp/node-args.ts';

interface BenchCase {
  readonly protocol: 'pbft' | 'epaxos';
  readonly nodes: number;
}

const CASES: readonly BenchCase[] = [
  { protocol: 'pbft', nodes: 4 },
  { protocol: 'epaxos', nodes: 5 },
];

export async function benchClusterTcp(): Promise<Record<string, number>> {
  const durationMs = Number(process.env.LATTICE_BENCH_TCP_MS ?? 10_000);
  const clients = Number(process.env.LATTICE_BENCH_TCP_CLIENTS ?? 16);
  const trace = (process.env.LATTICE_BENCH_TCP_TRACE ?? 'ndjson') as TraceMode;
  const metrics: Record<string, number> = {};
  for (const { protocol, nodes } of CASES) {
    const runDir = mkdtempSync(join(tmpdir(), `lattice-bench-tcp-${protocol}-`));
    const cluster = await startCluster({ protocol, nodes, runDir, trace });
    try {
      const result = await runLoad({
        clusterFile: cluster.clusterFile,
        clients,
        durationMs,
        warmupMs: 1000,
        keys: 1000,
        readRatio: 0.5,
        conflictRate: 0.02,
      });
      metrics[`${protocol}_tcp_ops_per_s`] = result.ops_per_s;
      metrics[`${protocol}_tcp_commit_ms_p50`] = result.latency_ms.p50;
      metrics[`${protocol}_tcp_commit_ms_p90`] = result.latency_ms.p90;
      metrics[`${protocol}_tcp_commit_ms_p99`] = result.latency_ms.p99;
      metrics[`${protocol}_tcp_commit_ms_max`] = result.latency_ms.max;
      metrics[`${protocol}_tcp_errors`] = result.errors;
    } finally {
      await cluster.stop();
      rmSync(runDir, { recursive: true, force: true });
    }
  }
  return metrics;
}

if (process.argv.some((arg) => arg.endsWith('bench/cluster-tcp.ts'))) {
  const metrics = await benchClusterTcp();
  process.stdout.write(JSON.stringify(metrics, null, 2) + '\n');
}
