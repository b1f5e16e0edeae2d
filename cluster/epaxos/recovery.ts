/**
 * Explicit prepare: what a recovering replica does with the PREPARE replies it has collected for
 * an instance. Pure, so each case of the paper (SOSP'13 Fig. 3, with the optimized fast quorum)
 * is tested on its own.
 *
 * Values are chosen by the ballot of the last *vote* (vbal), not by the promised ballot: that is
 * the fix for the recovery bug in Sutra, "On the correctness of Egalitarian Paxos" (2019).
 */
import { fastQuorumSize, recoveryEqThreshold, slowQuorumSize } from './quorums.ts';
import type { Attributes, InstanceStatus } from './types.ts';
import type { NodeId } from '../protocol.ts';
import { DEFAULT_BALLOT, emptyDeps, sameAttributes } from './types.ts';

export interface RecoveryReply {
  readonly from: NodeId;
  readonly status: InstanceStatus;
  readonly attrs: Attributes | null;
  readonly vbal: number;
  /** Pre-accepted at the default ballot with the command leader's attributes unchanged. */
  readonly eq: boolean;
}

export type RecoveryDecision =
  | { readonly kind: 'commit'; readonly attrs: Attributes }
  | { readonly kind: 'accept'; readonly attrs: Attributes }
  /** Run phase 1 again at the new ballot for this command, never taking the fast path. */
  | { readonly kind: 'preaccept'; readonly attrs: Attributes }
  /** Nothing needs more replies to be decided safely; keep collecting. */
  | { readonly kind: 'wait' };

export interface RecoveryContext {
  readonly n: number;
  readonly f: number;
  /** The command leader, owner of the instance space. */
  readonly leader: NodeId;
}

export function noopAttributes(n: number): Attributes {
  return { cmd: null, seq: 0, deps: emptyDeps(n) };
}

function highestVbal(replies: readonly RecoveryReply[]): RecoveryReply | undefined {
  let best: RecoveryReply | undefined;
  for (const r of replies) if (r.attrs !== null && (best === undefined || r.vbal > best.vbal)) best = r;
  return best;
}

/**
 * The decision for the replies so far (at most one per replica, the recoverer's own included).
 *
 * The "identical pre-accepted replies" case is where the optimized fast quorum bites. With
 * F + ⌊(F+1)/2⌋ a fast commit leaves only ⌊(F+1)/2⌋ unchanged replies in a recovery quorum, and
 * the same count can come from an instance that was never committed — committing the leader's
 * attributes then could miss a conflicting command committed meanwhile (the reference code runs
 * TryPreAccept for this). We accept those attributes only when the fast commit is certain to be
 * covered (≥ F unchanged non-leader replies, i.e. F+1 holders with the leader: every quorum meets
 * one; for F = 1 this is exactly the paper's ⌊(F+1)/2⌋ rule); rerun phase 1 when a fast commit
 * is impossible (the leader itself answered without a commit, or too few replicas could have been
 * in its fast quorum); and otherwise wait for more replies.
 */
export function decideRecovery(replies: readonly RecoveryReply[], ctx: RecoveryContext): RecoveryDecision {
  const committed = replies.find((r) => (r.status === 'committed' || r.status === 'executed') && r.attrs !== null);
  if (committed?.attrs) return { kind: 'commit', attrs: committed.attrs };
  if (replies.length < slowQuorumSize(ctx.f)) return { kind: 'wait' };

  const accepted = highestVbal(replies.filter((r) => r.status === 'accepted'));
  if (accepted?.attrs) return { kind: 'accept', attrs: accepted.attrs };

  const eqReplies = replies.filter((r) => r.from !== ctx.leader && r.status === 'preaccepted' && r.eq && r.vbal === DEFAULT_BALLOT && r.attrs !== null);
  const eqValue = largestAgreeingGroup(eqReplies);
  if (eqValue !== null) {
    const { attrs, count } = eqValue;
    if (count >= ctx.f && count >= recoveryEqThreshold(ctx.f)) return { kind: 'accept', attrs };
    const leaderAnswered = replies.some((r) => r.from === ctx.leader);
    const nonLeaderAnswered = replies.filter((r) => r.from !== ctx.leader).length;
    const silentNonLeaders = ctx.n - 1 - nonLeaderAnswered;
    const fastCommitPossible = !leaderAnswered && count + silentNonLeaders >= fastQuorumSize(ctx.f) - 1;
    if (fastCommitPossible) return { kind: 'wait' };
  }

  const preAccepted = highestVbal(replies.filter((r) => r.status === 'preaccepted'));
  if (preAccepted?.attrs) return { kind: 'preaccept', attrs: preAccepted.attrs };
  return { kind: 'accept', attrs: noopAttributes(ctx.n) };
}

function largestAgreeingGroup(replies: readonly RecoveryReply[]): { attrs: Attributes; count: number } | null {
  let best: { attrs: Attributes; count: number } | null = null;
  for (const r of replies) {
    if (r.attrs === null) continue;
    const attrs = r.attrs;
    const count = replies.filter((o) => o.attrs !== null && sameAttributes(o.attrs, attrs)).length;
    if (best === null || count > best.count) best = { attrs, count };
  }
  return best;
}
