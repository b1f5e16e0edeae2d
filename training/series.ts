/**
 * Per-run time series of scores and labels, one entry per window: what alerts and event scoring
 * work on. At node level a window's score is the largest of its nodes' (an alert is about the
 * cluster: "something is wrong here now"; which node is root cause's question), and its labels
 * are the cluster's (the same on every node row).
 */
import { invariant } from '../core/errors.ts';
import type { Dataset } from './read.ts';

export interface RunSeries {
  readonly runId: string;
  readonly protocol: string;
  readonly windowMs: number;
  /** Ascending. */
  readonly windowStartMs: Float64Array;
  readonly score: Float64Array;
  readonly faultActive: Uint8Array;
  readonly recovering: Uint8Array;
  readonly kinds: readonly (readonly string[])[];
}

/** Groups a dataset's row scores into one series per run (max over the nodes of a window). */
export function seriesOf(dataset: Dataset, scores: Float64Array): RunSeries[] {
  const { labels, runs, matrix } = dataset;
  invariant(scores.length === matrix.rows, `seriesOf: ${scores.length} scores for ${matrix.rows} rows`);
  const out: RunSeries[] = [];
  let i = 0;
  while (i < matrix.rows) {
    const run = labels.run[i]!;
    const start: number[] = [];
    const score: number[] = [];
    const fault: number[] = [];
    const rec: number[] = [];
    const kinds: (readonly string[])[] = [];
    while (i < matrix.rows && labels.run[i] === run) {
      const w = matrix.windowStartMs[i]!;
      if (start.length > 0 && start.at(-1) === w) {
        const last = score.length - 1;
        // NaN (warming up) never wins a max.
        if (!(score[last]! >= scores[i]!)) score[last] = Number.isNaN(scores[i]!) ? score[last]! : scores[i]!;
      } else {
        invariant(start.length === 0 || w > start.at(-1)!, `seriesOf: run ${runs[run]?.runId} windows out of order at row ${i}`);
        start.push(w);
        score.push(scores[i]!);
        fault.push(labels.faultActive[i]!);
        rec.push(labels.recovering[i]!);
        kinds.push(labels.activeFaults[i]!);
      }
      i++;
    }
    const ref = runs[run]!;
    out.push({ runId: ref.runId, protocol: ref.protocol, windowMs: matrix.windowMs, windowStartMs: Float64Array.from(start), score: Float64Array.from(score), faultActive: Uint8Array.from(fault), recovering: Uint8Array.from(rec), kinds });
  }
  return out;
}
