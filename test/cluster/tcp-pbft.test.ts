/** PBFT as 4 real processes over TCP on loopback: requests complete, states agree, f = 1 crash is survived. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateTraceRecord } from '../../core/trace-schema.ts';
import { tcpClusterSuite } from './tcp-suite.ts';

describe('PBFT over TCP (4 processes)', () => {
  const suite = tcpClusterSuite({ protocol: 'pbft', nodes: 4, kill: [3], trace: 'ndjson' });

  it('leaves schema-valid PBFT trace records per node after a clean stop', async () => {
    await suite.cluster().stop();
    const lines = readFileSync(join(suite.runDir, 'node-1.ndjson'), 'utf8').trim().split('\n');
    const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const invalid = records.filter((r) => !validateTraceRecord(r).ok);
    expect(invalid).toEqual([]);
    const phases = new Set(records.map((r) => r.phase));
    for (const phase of ['pre_prepare', 'prepare', 'commit', 'execute']) expect(phases.has(phase)).toBe(true);
    expect(records.map((r) => r.node_seq)).toEqual(records.map((_, i) => i));
  });
});
