/**
 * Byzantine and omission behaviour wired at a node's outbound path. The protocol code stays
 * correct and unaware; the chaos engine flips these switches and the node's messages are
 * withheld, forged, equivocated or replayed on their way out (Twins-style adversarial wiring).
 */
import { invariant } from '../../core/errors.ts';
import type { Rng } from '../../core/rng.ts';
import type { Authenticator, ByzantineHooks, Message, NodeId } from '../protocol.ts';

const REPLAY_MEMORY = 64;

/** Switches of one node. Counters (not booleans) so overlapping faults of one kind nest. */
export class Misbehaviour {
  equivocate = 0;
  /** forged_vote: also send a copy of each vote claiming another node's identity (bad MAC). */
  impersonate = 0;
  /** forged_vote: send votes for a wrong digest, signed with the node's own key. */
  wrongDigest = 0;
  silent = 0;
  /**
   * The rates of the active withheld_vote / replay faults, one entry per fault, so that
   * overlapping faults nest like the counters above: the first to end leaves the others acting.
   * Each active fault acts independently, so the combined probability is 1 − Π(1 − rate).
   */
  private readonly withholdRates: number[] = [];
  private readonly replayRates: number[] = [];
  private readonly recorded: Message[] = [];
  private recordedNext = 0;
  /**
   * Outbound messages these switches actually changed, since the node booted: each one dropped
   * (silent, withheld), rewritten (equivocated, wrong digest) or added (impersonated copy,
   * replay) counts once. NodeHost turns it into a per-record count (`alteredSinceRecord`).
   */
  altered = 0;
  /** Messages the equivocation hook actually rewrote: what makes an equivocation fault act. */
  equivocated = 0;

  /** Probability of withholding each vote (withheld_vote). */
  get withholdRate(): number {
    return combined(this.withholdRates);
  }

  /** Probability, per outbound message, of also re-sending an old recorded message (replay). */
  get replayRate(): number {
    return combined(this.replayRates);
  }

  startWithholding(rate: number): void {
    this.withholdRates.push(rate);
  }

  stopWithholding(rate: number): void {
    removeOne(this.withholdRates, rate);
  }

  startReplaying(rate: number): void {
    this.replayRates.push(rate);
  }

  /** The last replay fault to end also forgets what it recorded. */
  stopReplaying(rate: number): void {
    removeOne(this.replayRates, rate);
    if (this.replayRates.length === 0) this.clearRecorded();
  }

  get active(): boolean {
    return this.equivocate + this.impersonate + this.wrongDigest + this.silent > 0 || this.withholdRate > 0 || this.replayRate > 0;
  }

  /** Keeps a ring of recent authentic messages while a replay fault is active. */
  remember(message: Message): void {
    if (this.replayRate <= 0) return;
    if (this.recorded.length < REPLAY_MEMORY) this.recorded.push(message);
    else this.recorded[this.recordedNext] = message;
    this.recordedNext = (this.recordedNext + 1) % REPLAY_MEMORY;
  }

  pickRecorded(rng: Rng): Message | undefined {
    if (this.recorded.length === 0) return undefined;
    return this.recorded[rng.int(this.recorded.length)];
  }

  clearRecorded(): void {
    this.recorded.length = 0;
    this.recordedNext = 0;
  }
}

function combined(rates: readonly number[]): number {
  let pass = 1;
  for (const rate of rates) pass *= 1 - rate;
  return 1 - pass;
}

function removeOne(rates: number[], rate: number): void {
  const at = rates.indexOf(rate);
  invariant(at >= 0, `ending a fault at rate ${rate} that never started`);
  rates.splice(at, 1);
}

export interface OutboundNode {
  readonly id: NodeId;
  readonly replicas: readonly NodeId[];
  readonly auth: Authenticator;
  readonly chaosRng: Rng;
  readonly misbehaviour: Misbehaviour;
  readonly byzantineHooks: ByzantineHooks;
}

export interface OutboundCopy {
  readonly to: NodeId;
  readonly message: Message;
}

/** What actually leaves the node for one logical send (zero, one or several messages). */
export function outboundCopies(node: OutboundNode, to: NodeId, message: Message): OutboundCopy[] {
  const m = node.misbehaviour;
  if (!m.active) return [{ to, message }];
  if (m.silent > 0) {
    m.altered++;
    return [];
  }
  const rng = node.chaosRng;
  const hooks = node.byzantineHooks;
  const isVote = hooks.isVote(message);
  if (isVote && m.withholdRate > 0 && rng.next() < m.withholdRate) {
    m.altered++;
    return [];
  }
  // A node relaying someone else's signed message cannot re-sign it; it only lies in its own name.
  const own = message.from === node.id;
  let main = message;
  if (own && m.equivocate > 0) {
    const variant = hooks.equivocate(message, to, rng, node.auth);
    if (variant !== null) {
      main = variant;
      m.equivocated++;
    }
  }
  if (own && isVote && m.wrongDigest > 0) main = wrongDigestVote(main, node.auth) ?? main;
  if (main !== message) m.altered++;
  const copies: OutboundCopy[] = [{ to, message: main }];
  if (own && isVote && m.impersonate > 0) {
    const victim = otherNode(node, to, rng);
    // Keeps this node's MAC while claiming another sender: a receiver checking MACs rejects it.
    if (victim !== undefined) {
      copies.push({ to, message: { ...message, from: victim } });
      m.altered++;
    }
  }
  if (m.replayRate > 0 && rng.next() < m.replayRate) {
    const old = m.pickRecorded(rng);
    if (old !== undefined) {
      copies.push({ to, message: old });
      m.altered++;
    }
  }
  return copies;
}

/** The vote with its digest (or, lacking one, its sequence number) changed, re-signed by its sender. */
export function wrongDigestVote(message: Message, auth: Authenticator): Message | null {
  const { mac: _mac, ...unsigned } = message;
  let forged: Message;
  if (typeof unsigned.digest === 'string' && unsigned.digest.length > 0) {
    forged = { ...unsigned, digest: flipFirstChar(unsigned.digest) };
  } else if (typeof unsigned.seq === 'number') {
    forged = { ...unsigned, seq: unsigned.seq + 1 };
  } else {
    return null;
  }
  return auth.sign(forged);
}

function flipFirstChar(text: string): string {
  const c = text.charAt(0);
  return (c === '0' ? '1' : '0') + text.slice(1);
}

function otherNode(node: OutboundNode, to: NodeId, rng: Rng): NodeId | undefined {
  const candidates = node.replicas.filter((r) => r !== node.id && r !== to);
  return candidates.length === 0 ? undefined : candidates[rng.int(candidates.length)];
}
