/** EPaxos as 5 real processes over TCP on loopback: requests complete, states agree, f = 2 crashes is survived. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type ClusterHandle } from '../../cluster/tcp/cluster-manager.ts';
import { waitForConvergence } from '../../cluster/tcp/convergence.ts';
import { runLoad } from '../../cluster/tcp/load.ts';

const runDir = mkdtempSync(join(tmpdir(), 'lattice-tcp-epaxos-'));
let cluster: ClusterHandle;

beforeAll(async () => {
  cluster = await startCluster({ protocol: 'epaxos', nodes: 5, runDir, trace: 'off' });
});

afterAll(async () => {
  await cluster?.stop();
  rmSync(runDir, { recursive: true, force: true });
});

describe('EPaxos over TCP (5 processes)', () => {
  it('completes requests from concurrent clients, and all replicas agree on the state', async () => {
    const result = await runLoad({ clusterFile: cluster.clusterFile, clients: 8, ops: 300, keys: 4, readRatio: 0.3, conflictRate: 0.5 });
    expect(result).toMatchObject({ protocol: 'epaxos', ops: 300, errors: 0, completed: 300 });
    const converged = await waitForConvergence(() => cluster.status(), { expectNodes: 5 });
    expect(converged.converged).toBe(true);
    expect(converged.statuses.every((s) => s.executed === 300 && s.digestsMatch)).toBe(true);
    expect(converged.statuses.every((s) => s.framesRejected === 0)).toBe(true);
  });

  it('keeps committing with two replicas crashed (f = 2), and the survivors agree', async () => {
    await cluster.kill(3);
    await cluster.kill(4);
    const result = await runLoad({ clusterFile: cluster.clusterFile, clients: 8, ops: 200, conflictRate: 0.2 });
    expect(result).toMatchObject({ ops: 200, errors: 0 });
    const converged = await waitForConvergence(() => cluster.status(), { expectNodes: 3 });
    expect(converged.converged).toBe(true);
    expect(converged.statuses.map((s) => s.node).sort()).toEqual([0, 1, 2]);
    expect(converged.statuses.every((s) => s.executed === 500)).toBe(true);
  });
});
