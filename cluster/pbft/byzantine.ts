/**
 * How the chaos engine makes a correct PBFT node misbehave: which messages are votes, and the
 * two-faced pre-prepare an equivocating primary sends to about half of its backups. Only a primary
 * sends pre-prepares, so an equivocating backup changes nothing until it becomes primary (the
 * engine labels the equivocation from its first rewritten pre-prepare, while it leads).
 */
import type { ByzantineHooks, Message } from '../protocol.ts';
import { batchDigest } from './digest.ts';
import { MSG, parsePrePrepare } from './messages.ts';

const VOTES: ReadonlySet<string> = new Set([MSG.prepare, MSG.commit, MSG.checkpoint, MSG.viewChange]);

export const pbftByzantineHooks: ByzantineHooks = {
  isVote: (message) => VOTES.has(message.type),
  // Every PBFT deadline is a timer (monotonic); nowUs() feeds only the latencies it reports.
  readsWallClock: false,
  equivocate(message, _to, rng, auth) {
    const pp = parsePrePrepare(message);
    if (!pp || pp.batch.length === 0 || rng.next() < 0.5) return null;
    // Reordered when possible, else the single request dropped: either way another digest.
    const batch = pp.batch.length >= 2 ? [...pp.batch].reverse() : [];
    const { mac: _mac, ...unsigned } = pp;
    return auth.sign({ ...unsigned, batch, digest: batchDigest(batch) } as Message);
  },
};
