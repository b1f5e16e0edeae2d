/**
 * Runners are swappable: a run through a pool (here a stand-in that does what a pool worker does —
 * load the census sink by module path, run, close the sink — with two runs in flight) gives the
 * same outcomes and the same census as the sequential in-process runner.
 */
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { TraceSink } from '../../core/sink.ts';
import { poolRunner, type SimulationPool } from '../../app/corpus.ts';
import { CENSUS_SINK_MODULE, createSink } from '../../cluster/chaos/census-file-sink.ts';
import { validateCorpusSpec } from '../../cluster/chaos/corpus-spec.ts';
import { runCorpus, simulationRunner } from '../../cluster/chaos/corpus-run.ts';
import { planCorpus } from '../../cluster/chaos/generate.ts';
import { protocolByName } from '../../cluster/protocols.ts';
import { runSimulation } from '../../cluster/run.ts';
import { TINY_SPEC } from '../support/corpus.ts';

/** Does what a worker of cluster/run-pool.ts does with a `{ kind: 'module' }` sink, in this process. */
function standInPool(size: number): SimulationPool & { peak: number } {
  let inFlight = 0;
  const pool = {
    size,
    peak: 0,
    async run(job: Parameters<SimulationPool['run']>[0]) {
      pool.peak = Math.max(pool.peak, ++inFlight);
      try {
        const loaded = (await import(pathToFileURL(job.sink.module).href)) as { createSink: (options: unknown) => TraceSink & { close(): Promise<void> } };
        const sink = loaded.createSink(job.sink.options);
        try {
          return await runSimulation({ protocol: protocolByName(job.protocol), scenario: job.scenario, seed: job.seed, runId: job.runId, sink });
        } finally {
          await sink.close();
        }
      } finally {
        inFlight--;
      }
    },
  };
  return pool;
}

describe('corpus runners', () => {
  it('a pool runner gives what the sequential runner gives', async () => {
    const jobs = planCorpus(validateCorpusSpec(TINY_SPEC)).slice(1, 4);
    const sequential = await runCorpus(jobs, simulationRunner());
    const dir = mkdtempSync(join(tmpdir(), 'lattice-census-'));
    const pool = standInPool(2);
    const pooled = await runCorpus(jobs, poolRunner(pool, dir));
    expect(pool.peak).toBe(2);
    expect(pooled.outcomes).toEqual(sequential.outcomes);
    expect(pooled.census).toEqual(sequential.census);
    expect(pooled.census.protocols.pbft!.labels.normal).toBeGreaterThan(0);
    expect(readdirSync(dir)).toEqual([]); // census files are read back and removed
  }, 120_000);

  it('the census sink module names what is missing', () => {
    expect(CENSUS_SINK_MODULE).toMatch(/census-file-sink\.ts$/);
    expect(() => createSink({} as never)).toThrow(/path: expected the file to write the counts to/);
  });
});
