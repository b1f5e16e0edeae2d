/** Synthetic feature matrices for the model tests: normal windows drawn from a seeded generator. */
import { createRng, type Rng } from '../../core/rng.ts';
import { featureNames, type FeatureLevel } from '../../store/feature-registry.ts';
import { createMatrix, type FeatureMatrix } from '../../models/matrix.ts';

/** Rows of the level's registry columns: each feature ~ base_j·(1 + 0.1·noise), requests_received at `load` (± 5 %). */
export function syntheticMatrix(rng: Rng, rows: number, options: { level?: FeatureLevel; contexts?: string[]; load?: (row: number) => number } = {}): FeatureMatrix {
  const level = options.level ?? 'cluster';
  const names = featureNames(level);
  const contexts = options.contexts ?? ['pbft/n4'];
  const values = new Float64Array(rows * names.length);
  const contextIds = new Uint16Array(rows);
  const load = options.load ?? (() => 100);
  for (let i = 0; i < rows; i++) {
    contextIds[i] = i % contexts.length;
    const l = load(i) * (0.95 + 0.1 * rng.next());
    names.forEach((name, j) => {
      // Counters scale with load; everything else hovers around its own base; two stay 0 (as retransmissions do).
      const base = name === 'retransmissions' || name === 'hash_mismatches' ? 0 : name === 'requests_received' ? l : (j + 1) * (name.endsWith('_share') ? 0.01 : l / 10);
      values[i * names.length + j] = base === 0 ? 0 : base * (0.9 + 0.2 * rng.next());
    });
  }
  return createMatrix({ level, windowMs: 100, featureNames: names, values, contextIds, contexts });
}

export { createRng };
