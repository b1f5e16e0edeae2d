/**
 * When a cluster is back to normal after its faults healed, judged from the protocol itself
 * (ReplicaProgress): the `recovering` period runs from the moment the last fault stops acting
 * until then.
 *
 * Settled means, over every replica that is up:
 * - the view is settled: no view change (PBFT) or explicit prepare (EPaxos) in progress, and
 *   every replica in the same view;
 * - the backlog is drained: no client request that arrived before the heal still waits at any
 *   replica (compared on each replica's own clock, read at the heal);
 * - catch-up is done: every replica has executed every position committed anywhere at the heal.
 * Work that arrives after the heal does not keep the cluster recovering: under steady load
 * there is always some.
 */
import type { ReplicaProgress } from '../protocol.ts';

export interface RecoveryMarks {
  /** Each replica's wall clock at the heal (index: node id). */
  readonly healClockUs: readonly number[];
  /** The highest committed position any replica had at the heal. */
  readonly committedAtHeal: number;
}

/** `reports[i]` null: replica i is down and not judged. */
export function recoveryMarks(reports: readonly (ReplicaProgress | null)[], clocksUs: readonly number[]): RecoveryMarks {
  let committed = 0;
  for (const report of reports) if (report !== null && report.committed > committed) committed = report.committed;
  return { healClockUs: clocksUs, committedAtHeal: committed };
}

export function isSettled(reports: readonly (ReplicaProgress | null)[], marks: RecoveryMarks): boolean {
  let view: number | null = null;
  for (let node = 0; node < reports.length; node++) {
    const report = reports[node];
    if (report === null || report === undefined) continue;
    if (report.viewChanging) return false;
    if (view === null) view = report.view;
    else if (report.view !== view) return false;
    if (report.executed < marks.committedAtHeal) return false;
    const healUs = marks.healClockUs[node];
    if (report.oldestRequestUs !== null && healUs !== undefined && report.oldestRequestUs < healUs) return false;
  }
  return true;
}
