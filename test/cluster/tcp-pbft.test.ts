/** PBFT as 4 real processes over TCP on loopback: requests complete, states agree, f = 1 crash is survived. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateTraceRecord } from '../../core/trace-schema.ts';
import { startCluster, type ClusterHandle } from '../../cluster/tcp/cluster-manager.ts';
import { waitForConvergence } from '../../cluster/tcp/convergence.ts';
import { runLoad } from '../../cluster/tcp/load.ts';

const runDir = mkdtempSync(join(tmpdir(), 'lattice-tcp-pbft-'));
let cluster: ClusterHandle;

beforeAll(async () => {
  cluster = await startCluster({ protocol: 'pbft', nodes: 4, runDir, trace: 'ndjson' });
});

afterAll(async () => {
  await cluster?.stop();
  rmSync(runDir, { recursive: true, force: true });
});

describe('PBFT over TCP (4 processes)', () => {
  it('completes requests from concurrent clients, and all replicas agree on the state', async () => {
    const result = await runLoad({ clusterFile: cluster.clusterFile, clients: 8, ops: 300, keys: 4, readRatio: 0.3, conflictRate: 0.5 });
    expect(result).toMatchObject({ protocol: 'pbft', ops: 300, errors: 0, completed: 300 });
    const converged = await waitForConvergence(() => cluster.status(), { expectNodes: 4 });
    expect(converged.converged).toBe(true);
    expect(converged.statuses.every((s) => s.executed === 300 && s.digestsMatch)).toBe(true);
    expect(converged.statuses.every((s) => s.framesRejected === 0)).toBe(true);
  });

  it('keeps committing with one backup crashed (f = 1), and the survivors agree', async () => {
    await cluster.kill(3);
    const result = await runLoad({ clusterFile: cluster.clusterFile, clients: 8, ops: 200, conflictRate: 0.2 });
    expect(result).toMatchObject({ ops: 200, errors: 0 });
    const converged = await waitForConvergence(() => cluster.status(), { expectNodes: 3 });
    expect(converged.converged).toBe(true);
    expect(converged.statuses.map((s) => s.node).sort()).toEqual([0, 1, 2]);
    expect(converged.statuses.every((s) => s.executed === 500)).toBe(true);
  });

  it('leaves schema-valid PBFT trace records per node after a clean stop', async () => {
    await cluster.stop();
    const lines = readFileSync(join(runDir, 'node-1.ndjson'), 'utf8').trim().split('\n');
    const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const invalid = records.filter((r) => !validateTraceRecord(r).ok);
    expect(invalid).toEqual([]);
    const phases = new Set(records.map((r) => r.phase));
    for (const phase of ['pre_prepare', 'prepare', 'commit', 'execute']) expect(phases.has(phase)).toBe(true);
    expect(records.map((r) => r.node_seq)).toEqual(records.map((_, i) => i));
  });
});
