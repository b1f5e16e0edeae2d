/**
 * Checking the proofs PBFT messages carry (checkpoint proofs, prepared and commit certificates,
 * VIEW-CHANGE, NEW-VIEW) and computing the new view's O. Pure functions: a replica and a test
 * can both ask "is this NEW-VIEW right?" without running a cluster.
 *
 * Every embedded message is verified individually with its original MAC; one bad item makes the
 * whole container invalid, and an invalid container is dropped before it is stored, so a forged
 * VIEW-CHANGE can never displace or poison a valid one.
 */
import { hasMutation, type Authenticator, type ClientRequest, type NodeId, type ProtocolMutation } from '../protocol.ts';
import { batchDigest, GENESIS_DIGEST } from './digest.ts';
import {
  parseCommitCert,
  parseCheckpoint,
  parsePreparedCert,
  parsePrePrepare,
  parseViewChange,
  type CheckpointMsg,
  type CommitCert,
  type NewViewMsg,
  type PreparedCert,
  type PrePrepareMsg,
  type ViewChangeMsg,
} from './messages.ts';

export interface QuorumContext {
  readonly n: number;
  readonly f: number;
  readonly auth: Authenticator;
  /** Log window L: how far above a stable checkpoint a sequence number may be. */
  readonly logWindow: number;
  /** Deliberate bugs for mutation testing (ProtocolOptions.mutations); never set in production. */
  readonly mutations?: readonly ProtocolMutation[];
}

export const primaryOf = (view: number, n: number): NodeId => view % n;

const isReplica = (ctx: QuorumContext, node: number): boolean => Number.isInteger(node) && node >= 0 && node < ctx.n;

/** Returns the certified state digest at `seq`, or null when the proof does not hold. */
export function checkpointProofDigest(ctx: QuorumContext, seq: number, proof: unknown): string | null {
  if (seq === 0) return GENESIS_DIGEST;
  if (!Array.isArray(proof)) return null;
  const senders = new Set<NodeId>();
  let digest: string | null = null;
  for (const item of proof) {
    const cp = parseCheckpoint(item);
    if (!cp || cp.seq !== seq || !isReplica(ctx, cp.from) || senders.has(cp.from) || !ctx.auth.verify(cp)) return null;
    if (digest !== null && cp.stateDigest !== digest) return null;
    digest = cp.stateDigest;
    senders.add(cp.from);
  }
  return senders.size >= 2 * ctx.f + 1 ? digest : null;
}

/** A pre-prepare is authentic when its primary signed it and its digest is its batch's. */
export function validPrePrepare(ctx: QuorumContext, x: unknown): PrePrepareMsg | null {
  const pp = parsePrePrepare(x);
  if (!pp || pp.from !== primaryOf(pp.view, ctx.n) || !ctx.auth.verify(pp)) return null;
  return batchDigest(pp.batch) === pp.digest ? pp : null;
}

export function validPreparedCert(ctx: QuorumContext, x: unknown): PreparedCert | null {
  const cert = parsePreparedCert(x);
  if (!cert || !validPrePrepare(ctx, cert.prePrepare)) return null;
  const { view, seq, digest } = cert.prePrepare;
  const primary = primaryOf(view, ctx.n);
  const senders = new Set<NodeId>();
  for (const p of cert.prepares) {
    if (p.view !== view || p.seq !== seq || p.digest !== digest) return null;
    if (!isReplica(ctx, p.from) || p.from === primary || senders.has(p.from) || !ctx.auth.verify(p)) return null;
    senders.add(p.from);
  }
  // Mutation 'prepare-quorum-f' (deliberate bug, tests only): the same weak quorum as the replica's.
  return senders.size >= (hasMutation(ctx, 'prepare-quorum-f') ? ctx.f : 2 * ctx.f) ? cert : null;
}

export function validCommitCert(ctx: QuorumContext, x: unknown): CommitCert | null {
  const cert = parseCommitCert(x);
  if (!cert || !validPrePrepare(ctx, cert.prePrepare)) return null;
  const { view, seq, digest } = cert.prePrepare;
  const senders = new Set<NodeId>();
  for (const c of cert.commits) {
    if (c.view !== view || c.seq !== seq || c.digest !== digest) return null;
    if (!isReplica(ctx, c.from) || senders.has(c.from) || !ctx.auth.verify(c)) return null;
    senders.add(c.from);
  }
  return senders.size >= 2 * ctx.f + 1 ? cert : null;
}

/** Checks a VIEW-CHANGE and everything it carries; the caller has already checked its own MAC
 * when it arrived directly, but a VIEW-CHANGE inside a NEW-VIEW is checked here too. */
export function validViewChange(ctx: QuorumContext, x: unknown): ViewChangeMsg | null {
  const vc = parseViewChange(x);
  if (!vc || !isReplica(ctx, vc.from) || !ctx.auth.verify(vc)) return null;
  if (checkpointProofDigest(ctx, vc.stableSeq, vc.checkpointProof) === null) return null;
  const seqs = new Set<number>();
  for (const item of vc.prepared) {
    const cert = validPreparedCert(ctx, item);
    if (!cert) return null;
    const { view, seq } = cert.prePrepare;
    if (view >= vc.newView || seq <= vc.stableSeq || seq > vc.stableSeq + ctx.logWindow || seqs.has(seq)) return null;
    seqs.add(seq);
  }
  return vc;
}

export interface NewViewEntry {
  readonly seq: number;
  readonly digest: string;
  readonly batch: readonly ClientRequest[];
}

export interface NewViewPlan {
  /** The highest stable checkpoint among the VIEW-CHANGEs, with its proof. */
  readonly minS: number;
  readonly checkpointProof: readonly CheckpointMsg[];
  /** The highest sequence number O covers (minS when nothing was prepared above it). */
  readonly maxS: number;
  /** O: one entry per seq in (minS, maxS], no gaps. */
  readonly entries: readonly NewViewEntry[];
}

/**
 * The new primary's O, from already-validated VIEW-CHANGEs. For each seq above the highest
 * stable checkpoint it re-issues the batch of the highest-view prepared certificate, and a null
 * request where no certificate exists, so execution (which never skips a seq) cannot stall.
 */
export function computeNewViewPlan(viewChanges: readonly ViewChangeMsg[], ctx?: Pick<QuorumContext, 'mutations'>): NewViewPlan {
  const ordered = [...viewChanges].sort((a, b) => a.from - b.from);
  let minS = 0;
  let checkpointProof: readonly CheckpointMsg[] = [];
  for (const vc of ordered) {
    if (vc.stableSeq > minS) {
      minS = vc.stableSeq;
      checkpointProof = vc.checkpointProof;
    }
  }
  const best = new Map<number, PrePrepareMsg>();
  let maxS = minS;
  for (const vc of ordered) {
    for (const cert of vc.prepared) {
      const pp = cert.prePrepare;
      if (pp.seq <= minS) continue;
      const current = best.get(pp.seq);
      if (!current || pp.view > current.view) best.set(pp.seq, pp);
      maxS = Math.max(maxS, pp.seq);
    }
  }
  const entries: NewViewEntry[] = [];
  for (let seq = minS + 1; seq <= maxS; seq++) {
    // Mutation 'no-cert-carryover' (deliberate bug, tests only; raijin #8): prepared certificates
    // are dropped and every slot is filled with a null request.
    const pp = ctx !== undefined && hasMutation(ctx, 'no-cert-carryover') ? undefined : best.get(seq);
    entries.push(pp ? { seq, digest: pp.digest, batch: pp.batch } : { seq, digest: batchDigest([]), batch: [] });
  }
  return { minS, checkpointProof, maxS, entries };
}

/**
 * Verifies a NEW-VIEW end to end: its sender is the new view's primary, it carries 2f+1 valid
 * VIEW-CHANGEs for that view from distinct replicas, and its pre-prepares are exactly the O
 * recomputed from them, each signed by the new primary. Returns the plan, or null.
 */
export function verifyNewView(ctx: QuorumContext, nv: NewViewMsg): NewViewPlan | null {
  const primary = primaryOf(nv.newView, ctx.n);
  if (nv.from !== primary || !ctx.auth.verify(nv)) return null;
  const senders = new Set<NodeId>();
  const viewChanges: ViewChangeMsg[] = [];
  for (const item of nv.viewChanges) {
    const vc = validViewChange(ctx, item);
    if (!vc || vc.newView !== nv.newView || senders.has(vc.from)) return null;
    senders.add(vc.from);
    viewChanges.push(vc);
  }
  if (senders.size < 2 * ctx.f + 1) return null;
  const plan = computeNewViewPlan(viewChanges, ctx);
  if (nv.prePrepares.length !== plan.entries.length) return null;
  for (let i = 0; i < plan.entries.length; i++) {
    const expected = plan.entries[i];
    const pp = validPrePrepare(ctx, nv.prePrepares[i]);
    if (!expected || !pp || pp.view !== nv.newView || pp.seq !== expected.seq || pp.digest !== expected.digest) return null;
  }
  return plan;
}
