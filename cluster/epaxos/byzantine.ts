/**
 * Hooks that let the chaos engine make an EPaxos node misbehave without the protocol knowing.
 * EPaxos tolerates crashes only, so these runs test safety beyond the fault model. Every replica
 * leads its own instances, so an equivocating replica equivocates on each command it proposes.
 */
import type { Authenticator, ByzantineHooks, Message, NodeId } from '../protocol.ts';
import type { Rng } from '../../core/rng.ts';
import { isCommand, VOTE_TYPES } from './messages.ts';

export const epaxosByzantineHooks: ByzantineHooks = {
  isVote(message: Message): boolean {
    return VOTE_TYPES.has(message.type);
  },

  // Recovery and retransmission deadlines and the idle tick's cadence are nowUs() + a timeout,
  // compared with nowUs() later: a wall-clock step moves them (forward: due at once; back: late).
  readsWallClock: true,

  /** An equivocating command leader pre-accepts a different command with half of the replicas. */
  equivocate(message: Message, to: NodeId, rng: Rng, auth: Authenticator): Message | null {
    if (message.type !== 'PRE_ACCEPT' || to % 2 === 0) return null;
    const cmd = message.cmd;
    if (!isCommand(cmd) || cmd === null) return null;
    const { mac: _mac, ...unsigned } = message;
    const value = `equivocated-${rng.int(1_000_000)}`;
    const forged = { ...cmd, op: { kind: 'write' as const, key: cmd.op.key, value } };
    return auth.sign({ ...unsigned, cmd: forged });
  },
};
