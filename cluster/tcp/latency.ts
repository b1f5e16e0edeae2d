/** Exact latency percentiles (nearest rank over all samples): a load run keeps every sample. */
export interface LatencySummaryMs {
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

export class LatencyRecorder {
  private samples = new Float64Array(1024);
  private count = 0;

  /** One operation's latency, microseconds. */
  record(latencyUs: number): void {
    if (this.count === this.samples.length) {
      const grown = new Float64Array(this.samples.length * 2);
      grown.set(this.samples);
      this.samples = grown;
    }
    this.samples[this.count++] = latencyUs;
  }

  get size(): number {
    return this.count;
  }

  summaryMs(): LatencySummaryMs {
    if (this.count === 0) return { p50: 0, p90: 0, p99: 0, max: 0, mean: 0 };
    const sorted = this.samples.slice(0, this.count).sort();
    let sum = 0;
    for (const v of sorted) sum += v;
    const ms = (us: number): number => Math.round(us) / 1000;
    return {
      p50: ms(percentileOfSorted(sorted, 50)),
      p90: ms(percentileOfSorted(sorted, 90)),
      p99: ms(percentileOfSorted(sorted, 99)),
      max: ms(sorted[sorted.length - 1] as number),
      mean: ms(sum / sorted.length),
    };
  }
}

/** Nearest-rank percentile: the smallest sample with at least p% of samples at or below it. */
export function percentileOfSorted(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1] as number;
}
