/**
 * How far each instance space can be garbage-collected: below what *every* replica has executed
 * (the Go implementation's per-space "executed up to", learnt here from the SYNC messages the
 * replicas already exchange). An instance every replica executed is one no replica will ever
 * need again: no one recovers it (recovery is for uncommitted instances), no one asks for its
 * commit (SYNC catch-up starts above the asker's committed prefix, which is at least its executed
 * one), and dependencies on it are satisfied (execution skips below the executed prefix).
 *
 * Reports only move up (max): SYNC messages can arrive out of order. A replica that stops
 * reporting (crashed, partitioned) holds the watermark at its last report, so memory grows for as
 * long as it is away, and falls again once it is back and has caught up, which it can, because
 * nothing it still needs was collected. An amnesiac restart (outside EPaxos's fault model: see
 * cluster/chaos/fault-model.ts) would need instances that are gone; it stays blocked rather than
 * execute without them (its deps vectors start at instance 0 of every space).
 */
export class GcWatermark {
  /** executed[r][q]: the highest executed prefix of space q that replica r reported. */
  private readonly executed: number[][];

  constructor(
    private readonly n: number,
    private readonly self: number,
    /** This replica's own executed prefix per space (live, not a copy). */
    private readonly ownExecuted: readonly number[],
  ) {
    this.executed = Array.from({ length: n }, () => new Array<number>(n).fill(-1));
  }

  /** A peer's SYNC: its executed prefix per space. */
  report(from: number, executedPrefix: readonly number[]): void {
    const row = this.executed[from];
    if (row === undefined || from === this.self) return;
    for (let q = 0; q < this.n; q++) {
      const reported = executedPrefix[q] ?? -1;
      if (reported > row[q]!) row[q] = reported;
    }
  }

  /** Highest j such that every replica has executed q.0..q.j (-1: none). */
  floor(q: number): number {
    let floor = this.ownExecuted[q] ?? -1;
    for (let r = 0; r < this.n; r++) {
      if (r === this.self) continue;
      const reported = this.executed[r]![q]!;
      if (reported < floor) floor = reported;
    }
    return floor;
  }
}
