/** PBFT as 4 real processes over TCP on loopback: requests complete, states agree, f = 1 crash is survived. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { claimsToBeSnapshot, validateMetricsSnapshot } from '../../core/metrics-snapshot.ts';
import { validateTraceRecord } from '../../core/trace-schema.ts';
import { tcpClusterSuite } from './tcp-suite.ts';

describe('PBFT over TCP (4 processes)', () => {
  const suite = tcpClusterSuite({ protocol: 'pbft', nodes: 4, kill: [3], trace: 'ndjson' });

  it('leaves schema-valid PBFT trace records and metrics snapshots per node after a clean stop', async () => {
    await suite.cluster().stop();
    const lines = readFileSync(join(suite.runDir, 'node-1.ndjson'), 'utf8').trim().split('\n');
    const all = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const snapshots = all.filter(claimsToBeSnapshot);
    const records = all.filter((r) => !claimsToBeSnapshot(r));
    expect(records.filter((r) => !validateTraceRecord(r).ok)).toEqual([]);
    expect(snapshots.filter((s) => !validateMetricsSnapshot(s).ok)).toEqual([]);
    // Wall-clock snapshots every 100 ms while the node ran, numbered without holes, and the
    // traffic the node's records count shows up per peer in them too.
    expect(snapshots.length).toBeGreaterThan(3);
    expect(snapshots.map((s) => s.snap_seq)).toEqual(snapshots.map((_, i) => i));
    const sentPerPeer = snapshots.reduce<number>((sum, s) => sum + (s.sent_to as number[]).reduce((a, b) => a + b, 0), 0);
    expect(sentPerPeer).toBeGreaterThan(0);
    expect(snapshots[0]!.peers).toEqual([0, 2, 3]);
    const phases = new Set(records.map((r) => r.phase));
    for (const phase of ['pre_prepare', 'prepare', 'commit', 'execute']) expect(phases.has(phase)).toBe(true);
    expect(records.map((r) => r.node_seq)).toEqual(records.map((_, i) => i));
  });
});
