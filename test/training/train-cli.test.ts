/**
 * `lattice train` and `lattice eval` on a tiny real corpus through the embedded store
 * (test/training/fixtures: 4 + 4 runs of 3 s): it refuses to train before the runs are generated
 * and says how to generate them; seeded training reproduces the same model and thresholds; the
 * artefact scores the real windows (faults above normal traffic); eval prints the report's keys
 * for the model and the random baseline.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../core/config.ts';
import { openStore } from '../../store/client.ts';
import { readArtefact, type Artefact } from '../../models/artefact.ts';
import { corpusRuns } from '../../app/commands/train.ts';
import { normalMask, readDataset } from '../../training/read.ts';

const run = promisify(execFile);
const CLI = resolve(import.meta.dirname, '../../bin/lattice.js');
const FIXTURES = resolve(import.meta.dirname, 'fixtures');
const TRAIN = join(FIXTURES, 'tiny-train.yaml');
const CAL = join(FIXTURES, 'tiny-calibration.yaml');
const dataDir = mkdtempSync(join(tmpdir(), 'lattice-train-'));
const lattice = (args: string[]) => run(process.execPath, [CLI, '--data-dir', dataDir, ...args], { env: { ...process.env, LATTICE_LOG_LEVEL: 'warn' }, maxBuffer: 16 * 1024 * 1024 });

async function trainTo(out: string, seed: number): Promise<{ summary: Record<string, unknown>; artefact: Artefact; path: string }> {
  const { stdout } = await lattice(['train', '--corpus', TRAIN, '--calibration', CAL, '--out', out, '--seed', String(seed), '--json']);
  const summary = JSON.parse(stdout) as Record<string, unknown>;
  const path = summary.artefact as string;
  return { summary, artefact: JSON.parse(readFileSync(path, 'utf8')) as Artefact, path };
}

describe('lattice train / eval (end to end, embedded store)', () => {
  it('says to generate the corpus first when its runs are not in the store', async () => {
    const error = await lattice(['train', '--corpus', TRAIN, '--calibration', CAL, '--out', join(dataDir, 'none')]).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(error?.code).toBe(1);
    expect(error?.stderr).toMatch(/4 runs not in the store \(tinytrain-pbft-7, .*run `lattice chaos generate --corpus .*tiny-train\.yaml` first.*\[NOT_FOUND\]/);
  }, 60_000);

  it('trains reproducibly from a seed, scores the real windows, and evaluates against a random baseline', async () => {
    await lattice(['chaos', 'generate', '--corpus', TRAIN, '--out', join(dataDir, 'c-train'), '--json']);
    await lattice(['chaos', 'generate', '--corpus', CAL, '--out', join(dataDir, 'c-cal'), '--json']);
    const a = await trainTo(join(dataDir, 'm1'), 3);
    const b = await trainTo(join(dataDir, 'm2'), 3);
    expect(readdirSync(join(dataDir, 'm1'))).toEqual([`robust-z-${a.artefact.version}.json`]);
    expect(a.artefact.training.runs).toEqual(['tinytrain-pbft-7', 'tinytrain-epaxos-7', 'tinytrain-pbft-8', 'tinytrain-epaxos-8']);
    expect(a.artefact.calibration.runs).toHaveLength(4);
    expect(Object.keys(a.artefact.thresholds).sort()).toEqual(['epaxos/n5', 'pbft/n4']);
    // Same seed, same data: the same model, thresholds and baselines (only the creation time and version differ).
    expect(b.artefact.checksum.sections.state).toBe(a.artefact.checksum.sections.state);
    expect(b.artefact.thresholds).toEqual(a.artefact.thresholds);
    expect(b.artefact.baselines).toEqual(a.artefact.baselines);
    expect(b.artefact.metrics).toEqual(a.artefact.metrics);

    const { stdout } = await lattice(['eval', '--model', a.path, '--corpus', CAL, '--json']);
    const report = JSON.parse(stdout) as { by_protocol: Record<string, Record<string, unknown> & { baselines: Record<string, Record<string, unknown>> }> };
    expect(Object.keys(report.by_protocol).sort()).toEqual(['epaxos', 'pbft']);
    for (const p of Object.values(report.by_protocol)) {
      for (const m of [p, p.baselines.random!]) {
        for (const key of ['f1_by_fault', 'f1_mean', 'false_alarms_per_hour', 'delay_ms_p50', 'delay_ms_p90', 'pr_auc', 'precision', 'recall', 'f1']) expect(m).toHaveProperty(key);
      }
      // Calibrated on these runs at a budget that allows none in a few seconds of fault-free time.
      expect(p.false_alarms).toBe(0);
    }

    // In this process: the artefact loads, and on real windows faults score above normal traffic.
    const config = loadConfig({ overrides: { store: { data_dir: dataDir } } });
    const store = await openStore(config.store);
    try {
      const { detector } = readArtefact(a.path, { windowMs: 100, level: 'cluster' });
      const data = await readDataset(store, corpusRuns(CAL).runs, { level: 'cluster', windowMs: 100 });
      const batch = detector.score(data.matrix);
      const normal = normalMask(data.labels);
      const faulty: number[] = [];
      const quiet: number[] = [];
      for (let i = 0; i < data.matrix.rows; i++) {
        expect(Number.isFinite(batch.scores[i]!)).toBe(true);
        if (data.labels.faultActive[i] === 1) faulty.push(batch.scores[i]!);
        else if (normal[i] === 1) quiet.push(batch.scores[i]!);
      }
      const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[xs.length >> 1]!;
      expect(faulty.length).toBeGreaterThan(3);
      expect(med(faulty)).toBeGreaterThan(med(quiet));
      // Loaded twice, the same scores.
      expect(Array.from(readArtefact(a.path).detector.score(data.matrix).scores)).toEqual(Array.from(batch.scores));
    } finally {
      await store.close();
    }
  }, 240_000);
});
