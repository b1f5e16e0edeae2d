/**
 * How far each instance space can be garbage-collected: below what *every* replica has executed
 * (the Go implementation's per-space "executed up to"). Replicas report their executed prefix in
 * SYNC and in every PRE_ACCEPT_REPLY, so a command leader knows everyone's within a round trip;
 * the leader's resulting watermark rides on its COMMITs, so the others learn it as fast (a fact
 * about every replica stays true when relayed). SYNC alone would leave the window held as long
 * as an idle SYNC takes to reach every peer (seconds at the baseline load). An instance every replica executed is one no replica will ever
 * need again: no one recovers it (recovery is for uncommitted instances), no one asks for its
 * commit (SYNC catch-up starts above the asker's committed prefix, which is at least its executed
 * one), and dependencies on it are satisfied (execution skips below the executed prefix).
 *
 * Reports only move up (max): SYNC messages can arrive out of order. A replica that stops
 * reporting (crashed, partitioned) holds the watermark at its last report, so the others hold
 * what it has not executed while it is away, up to EpaxosLimits.heldExecutedPerSpaceMax per space;
 * once back it catches up from their logs, or, if they dropped past that bound (or it lost its
 * state in an amnesiac restart), by snapshot (replica.ts onSnapshot).
 */
export class GcWatermark {
  /** executed[r][q]: the highest executed prefix of space q that replica r reported. */
  private readonly executed: number[][];
  /** Per space, the highest watermark a peer told us (COMMIT's executedEverywhere). */
  private readonly relayed: number[];

  constructor(
    private readonly n: number,
    private readonly self: number,
    /** This replica's own executed prefix per space (live, not a copy). */
    private readonly ownExecuted: readonly number[],
  ) {
    this.executed = Array.from({ length: n }, () => new Array<number>(n).fill(-1));
    this.relayed = new Array<number>(n).fill(-1);
  }

  /** A peer's executed prefix per space (SYNC, PRE_ACCEPT_REPLY). Returns whether any rose. */
  report(from: number, executedPrefix: readonly number[]): boolean {
    const row = this.executed[from];
    if (row === undefined || from === this.self) return false;
    let rose = false;
    for (let q = 0; q < this.n; q++) {
      const reported = executedPrefix[q] ?? -1;
      if (reported > row[q]!) {
        row[q] = reported;
        rose = true;
      }
    }
    return rose;
  }

  /** A peer's watermark: every replica executed up to it, per space. Returns whether any rose. */
  relay(executedEverywhere: readonly number[]): boolean {
    let rose = false;
    for (let q = 0; q < this.n; q++) {
      const told = executedEverywhere[q] ?? -1;
      if (told > this.relayed[q]!) {
        this.relayed[q] = told;
        rose = true;
      }
    }
    return rose;
  }

  /** Highest j such that every replica has executed q.0..q.j (-1: none), and never above what
   * this replica executed itself: what it drops, it has run (also after an amnesiac restart,
   * when relayed facts about its former self no longer hold). */
  floor(q: number): number {
    const own = this.ownExecuted[q] ?? -1;
    let reported = own;
    for (let r = 0; r < this.n; r++) {
      if (r === this.self) continue;
      const theirs = this.executed[r]![q]!;
      if (theirs < reported) reported = theirs;
    }
    return Math.min(own, Math.max(reported, this.relayed[q]!));
  }
}
