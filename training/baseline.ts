/**
 * The random baseline (Kim et al., AAAI 2022: with point adjustment a random score beats most
 * detectors; every table keeps one). Each row gets a uniform score from a generator seeded by
 * the seed and its run's id, so a run's scores do not depend on which other runs are read.
 */
import { createRng } from '../core/rng.ts';
import type { Dataset } from './read.ts';

export function randomScores(dataset: Dataset, seed: number): Float64Array {
  const scores = new Float64Array(dataset.matrix.rows);
  let current = -1;
  let rng = createRng(seed);
  for (let i = 0; i < scores.length; i++) {
    const run = dataset.labels.run[i]!;
    if (run !== current) {
      current = run;
      rng = createRng(`${seed}/random-baseline/${dataset.runs[run]!.runId}`);
    }
    scores[i] = rng.next();
  }
  return scores;
}
