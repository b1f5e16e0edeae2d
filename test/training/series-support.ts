/** Hand-made per-run series for the event-scoring tests: 100 ms windows from t = 0. */
import type { RunSeries } from '../../training/series.ts';

export interface Marks {
  /** Window ranges [from, to) by index. */
  readonly faulty?: readonly [number, number, string?][];
  readonly recovering?: readonly [number, number][];
}

export function series(scores: readonly number[], marks: Marks = {}, runId = 'r', protocol = 'pbft'): RunSeries {
  const n = scores.length;
  const faultActive = new Uint8Array(n);
  const recovering = new Uint8Array(n);
  const kinds: (readonly string[])[] = new Array(n).fill([]);
  for (const [from, to, kind] of marks.faulty ?? []) for (let i = from; i < to; i++) (faultActive[i] = 1), (kinds[i] = [kind ?? 'crash']);
  for (const [from, to] of marks.recovering ?? []) for (let i = from; i < to; i++) recovering[i] = 1;
  return { runId, protocol, windowMs: 100, windowStartMs: Float64Array.from({ length: n }, (_, i) => i * 100), score: Float64Array.from(scores), faultActive, recovering, kinds };
}

/** n windows of score `base`, with the listed indexes set to `high`. */
export function scores(n: number, high: readonly number[], base = 0, value = 10): number[] {
  const out = new Array<number>(n).fill(base);
  for (const i of high) out[i] = value;
  return out;
}
