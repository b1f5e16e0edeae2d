/**
 * Quorum sizes and ballots for n = 2F+1 replicas. The fast quorum is the optimized one from the
 * EPaxos technical report (NSDI'21 "EPaxos Revisited"): F + ⌊(F+1)/2⌋ including the leader,
 * e.g. 2 of 3, 3 of 5, 5 of 7. The slow (classic) quorum is F+1.
 */
import type { NodeId } from '../protocol.ts';

export function faultsTolerated(n: number): number {
  return Math.floor((n - 1) / 2);
}

export function fastQuorumSize(f: number): number {
  return f + Math.floor((f + 1) / 2);
}

export function slowQuorumSize(f: number): number {
  return f + 1;
}

/** Pre-accepted-unchanged replies from non-leaders that a fast commit leaves in any recovery quorum. */
export function recoveryEqThreshold(f: number): number {
  return Math.floor((f + 1) / 2);
}

/** The smallest ballot owned by `self` that is above `atLeast`. */
export function nextBallot(atLeast: number, self: NodeId, n: number): number {
  const counter = Math.max(1, Math.floor(Math.max(atLeast, 0) / n) + 1);
  return counter * n + self;
}
