/**
 * The worker pool runs simulations in child processes: same results as in-process, records
 * streamed to each run's own sink, failures reported per job, and the pool usable after a worker dies.
 */
import { claimsToBeSnapshot } from '../../core/metrics-snapshot.ts';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateScenario } from '../../cluster/chaos/scenario.ts';
import { pbftProtocol } from '../../cluster/pbft/index.ts';
import { RunPool, runPool, type PoolJob } from '../../cluster/run-pool.ts';
import { runSimulation } from '../../cluster/run.ts';
import { ValidationError } from '../../core/errors.ts';
import { MemorySink } from '../../core/sink.ts';
import type { TraceRecord } from '../../core/trace-schema.ts';

const scenario = validateScenario({
  name: 'pool-test',
  protocol: 'pbft',
  nodes: 4,
  duration_ms: 150,
  quiet_ms: 2_000,
  clients: 2,
  workload: { think_ms: 2 },
  faults: [{ at_ms: 40, duration_ms: 50, kind: 'drop', rate: 0.1 }],
});

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lattice-pool-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('run pool', () => {
  it('gives the in-process result for each seed, and streams each run to its own NDJSON file', async () => {
    const seeds = [1, 2, 3];
    const jobs: PoolJob[] = seeds.map((seed) => ({ protocol: 'pbft', scenario, seed, sink: { kind: 'ndjson', path: join(dir, `run-${seed}.ndjson`) } }));
    const seen: number[] = [];
    const outcomes = await runPool(jobs, { workers: 2, onOutcome: (o) => seen.push(o.index) });
    expect(outcomes.map((o) => o.index)).toEqual([0, 1, 2]);
    expect([...seen].sort()).toEqual([0, 1, 2]);
    for (const [i, seed] of seeds.entries()) {
      const outcome = outcomes[i]!;
      if (!outcome.ok) throw outcome.error;
      const local = new MemorySink();
      const expected = await runSimulation({ protocol: pbftProtocol, scenario, seed, sink: local });
      expect(outcome.result.traceHash).toBe(expected.traceHash);
      expect(outcome.result.ok).toBe(true);
      expect(outcome.result.records).toBe(expected.records);
      expect(outcome.result.executedCounts).toEqual(expected.executedCounts);
      const lines = (await readFile(join(dir, `run-${seed}.ndjson`), 'utf8')).trim().split('\n');
      // Records and metrics snapshots share the file, one a line; snapshots say record_type metrics.
      const parsed = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
      const records = parsed.filter((x) => !claimsToBeSnapshot(x));
      expect(records).toHaveLength(expected.records);
      expect(parsed.length - records.length).toBe(expected.snapshots);
      expect(records[0] as TraceRecord).toEqual(local.records[0]);
      expect(outcome.result.snapshotHash).toBe(expected.snapshotHash);
    }
  });

  it('plugs in a sink module, reports a failing job without stopping the others, and replaces a dead worker', async () => {
    const module = join(dir, 'counting-sink.mjs');
    await writeFile(
      module,
      `import { appendFileSync } from 'node:fs';
       export function createSink(options, job) {
         let n = 0;
         return { async write(records) { n += records.length; }, async writeSnapshots() {}, async close() { appendFileSync(options.out, job.seed + ' ' + n + '\\n'); } };
       }
       export function dies() { process.exit(3); }`,
    );
    const out = join(dir, 'counts.txt');
    const pool = new RunPool({ workers: 1 });
    try {
      const good = await pool.run({ protocol: 'pbft', scenario, seed: 4, sink: { kind: 'module', module, options: { out } } });
      await expect(pool.run({ protocol: 'pbft', scenario, seed: 5, sink: { kind: 'module', module, export: 'missing' } })).rejects.toThrow(/exports no function missing/);
      await expect(pool.run({ protocol: 'pbft', scenario, seed: 6, sink: { kind: 'module', module, export: 'dies' } })).rejects.toThrow(/worker process exited \(code 3\)/);
      const after = await pool.run({ protocol: 'pbft', scenario, seed: 4 });
      expect(after.traceHash).toBe(good.traceHash);
      expect(await readFile(out, 'utf8')).toBe(`4 ${good.records}\n`);
    } finally {
      await pool.close();
    }
  });

  it('names a bad worker count', () => {
    expect(() => new RunPool({ workers: 0 })).toThrow(ValidationError);
    expect(() => new RunPool({ workers: 1.5 })).toThrow(/workers: expected an integer >= 1/);
  });
});
