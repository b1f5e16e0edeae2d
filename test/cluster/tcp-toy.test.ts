/**
 * Real processes over TCP with the toy protocol (transport only, no PBFT/EPaxos dependency), driven
 * through the CLI-ready commands: up (detached), load, status, a crashed backup, an oversized
 * frame, down.
 */
import { Socket } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { claimsToBeSnapshot, validateMetricsSnapshot } from '../../core/metrics-snapshot.ts';
import { validateTraceRecord } from '../../core/trace-schema.ts';
import { clusterDown, clusterLoad, clusterStatus, clusterUp, type ClusterUpResult } from '../../cluster/tcp/commands.ts';
import { waitForConvergence } from '../../cluster/tcp/convergence.ts';
import { DEFAULT_MAX_FRAME_BYTES } from '../../cluster/tcp/framing.ts';

const baseDir = mkdtempSync(join(tmpdir(), 'lattice-tcp-toy-'));
let cluster: ClusterUpResult;
const statuses = async () => (await clusterStatus({ baseDir })).nodes;

beforeAll(async () => {
  cluster = await clusterUp({ protocol: 'toy', nodes: 4, baseDir, runId: 'toy-run', exitWithParent: true });
});

afterAll(async () => {
  if (cluster !== undefined) await clusterDown({ baseDir });
  rmSync(baseDir, { recursive: true, force: true });
});

describe('a 4-process toy cluster over TCP', () => {
  it('writes cluster.json and answers status on every node', async () => {
    const file = JSON.parse(readFileSync(cluster.cluster_file, 'utf8')) as { ports: number[]; pids: number[]; protocol: string };
    expect(file).toMatchObject({ protocol: 'toy', ports: cluster.ports, pids: cluster.pids });
    expect(new Set(cluster.ports).size).toBe(4);
    const status = await clusterStatus({ baseDir });
    expect(status.unreachable).toEqual([]);
    expect(status.nodes.map((s) => s.pid).sort()).toEqual([...cluster.pids].sort());
    expect(status.nodes.every((s) => s.connectedPeers === 3)).toBe(true);
  });

  it('completes requests, and all nodes end with the same state digest', async () => {
    const result = await clusterLoad({ baseDir, clients: 8, ops: 400, keys: 4, readRatio: 0.3, conflictRate: 0.5 });
    expect(result).toMatchObject({ ops: 400, errors: 0, submitted: 400, completed: 400 });
    expect(result.ops_per_s).toBeGreaterThan(0);
    expect(result.latency_ms.p50).toBeGreaterThan(0);
    expect(result.latency_ms.p50).toBeLessThanOrEqual(result.latency_ms.p99);
    expect(result.latency_ms.p99).toBeLessThanOrEqual(result.latency_ms.max);
    const converged = await waitForConvergence(statuses, { expectNodes: 4 });
    expect(converged.converged).toBe(true);
    // 400 writes/reads executed once each everywhere (the state machine counts reads too).
    expect(converged.statuses.every((s) => s.executed === 400)).toBe(true);
  });

  it('rejects a frame over the size limit before a hello and closes that connection, and keeps serving', async () => {
    const port = cluster.ports[1] as number;
    const closed = await new Promise<boolean>((resolve) => {
      const socket = new Socket();
      socket.on('error', () => {});
      socket.on('close', () => resolve(true));
      socket.connect(port, '127.0.0.1', () => {
        const header = Buffer.alloc(4);
        header.writeUInt32BE(DEFAULT_MAX_FRAME_BYTES + 1, 0);
        socket.write(header);
      });
    });
    expect(closed).toBe(true);
    const node1 = (await statuses()).find((s) => s.node === 1);
    expect(node1).toMatchObject({ framesRejected: 0, hellosRejected: 1, hellosRejectedByReason: { frame_too_large: 1 } });
    const after = await clusterLoad({ baseDir, clients: 2, ops: 20 });
    expect(after.errors).toBe(0);
  });

  it('keeps serving with one backup killed (f = 1), and the survivors agree', async () => {
    process.kill(cluster.pids[3] as number, 'SIGKILL');
    const result = await clusterLoad({ baseDir, clients: 8, ops: 200, conflictRate: 0.2 });
    expect(result).toMatchObject({ ops: 200, errors: 0 });
    const converged = await waitForConvergence(statuses, { expectNodes: 3 });
    expect(converged.converged).toBe(true);
    expect(converged.statuses.map((s) => s.node).sort()).toEqual([0, 1, 2]);
    expect((await clusterStatus({ baseDir })).unreachable).toEqual([3]);
  });

  it('stops every process on down, and the trace files hold schema-valid records', async () => {
    const down = await clusterDown({ baseDir });
    expect([...down.stopped].sort()).toEqual(cluster.pids.slice(0, 3).sort());
    expect(down.already_gone).toEqual([cluster.pids[3]]);
    for (const pid of cluster.pids) expect(() => process.kill(pid, 0)).toThrow();
    const all = readFileSync(join(cluster.run_dir, 'node-2.ndjson'), 'utf8').trim().split('\n');
    // Metrics snapshots share the file, each a line of its own; the rest are the trace.
    const lines = all.filter((line) => !claimsToBeSnapshot(JSON.parse(line)));
    for (const line of all.filter((l) => !lines.includes(l))) expect(validateMetricsSnapshot(JSON.parse(line)).ok).toBe(true);
    // Node 2 executed every operation of the three runs (400 + 20 + 200).
    expect(lines.length).toBe(620);
    for (const line of lines.slice(0, 50)) expect(validateTraceRecord(JSON.parse(line))).toMatchObject({ ok: true });
    const seqs = lines.map((l) => (JSON.parse(l) as { node_seq: number }).node_seq);
    expect(seqs).toEqual(seqs.map((_, i) => i));
  });
});
