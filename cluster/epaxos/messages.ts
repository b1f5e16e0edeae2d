/**
 * EPaxos wire messages. Every message names the instance it is about (`replica`.`instance`, the
 * owner's space and slot) and the ballot it was sent at; `from` is the authenticated sender.
 * `parseMessage` checks the shape of anything that arrives, so a malformed message from a faulty
 * node is dropped instead of throwing inside the replica.
 */
import type { ClientRequest, Message, NodeId, StateSnapshot } from '../protocol.ts';
import type { ClientWindowState } from './executed-requests.ts';
import type { Command, InstanceStatus } from './types.ts';

// Type aliases, not interfaces: only aliases are assignable to Message's index signature.
type InstanceMessage = {
  readonly from: NodeId;
  readonly ballot: number;
  readonly replica: NodeId;
  readonly instance: number;
  mac?: string;
};

type Proposal = InstanceMessage & {
  readonly cmd: Command;
  readonly seq: number;
  readonly deps: readonly number[];
};

export type PreAcceptMessage = Proposal & { readonly type: 'PRE_ACCEPT' };
export type AcceptMessage = Proposal & { readonly type: 'ACCEPT' };
export type CommitMessage = Proposal & {
  readonly type: 'COMMIT';
  /** The sender's GC watermark: per space, every replica has executed 0..j (gc-watermark.ts).
   * Commits go to everyone, so this spreads what leaders learn from the replies below. */
  readonly executedEverywhere: readonly number[];
};
export type PrepareMessage = InstanceMessage & { readonly type: 'PREPARE' };

export type PreAcceptReplyMessage = InstanceMessage & {
  readonly type: 'PRE_ACCEPT_REPLY';
  readonly ok: boolean;
  /** The replier's promised ballot (a NACK tells the proposer how high it has to go). */
  readonly promised: number;
  /** The replier already has the instance committed; the attributes are the committed ones. */
  readonly committed: boolean;
  readonly cmd: Command;
  readonly seq: number;
  readonly deps: readonly number[];
  /** The replier's attributes differ from the proposal (it knew of more conflicts). */
  readonly changed: boolean;
  /** The replier's executed prefix per space: every replica answers every pre-accept, so a
   * command leader hears everyone's often, even from replicas that lead nothing. */
  readonly executedPrefix: readonly number[];
};

export type AcceptReplyMessage = InstanceMessage & {
  readonly type: 'ACCEPT_REPLY';
  readonly ok: boolean;
  readonly promised: number;
};

export type PrepareReplyMessage = InstanceMessage & {
  readonly type: 'PREPARE_REPLY';
  readonly ok: boolean;
  readonly promised: number;
  readonly status: InstanceStatus;
  /** Null attributes when the replier knows nothing of the instance. */
  readonly cmd: Command;
  readonly seq: number;
  readonly deps: readonly number[] | null;
  readonly vbal: number;
  /** Pre-accepted at the default ballot with the leader's attributes unchanged. */
  readonly eq: boolean;
};

/** Anti-entropy: what the sender knows, so peers can send it the commits it missed. */
export type SyncMessage = {
  readonly type: 'SYNC';
  readonly from: NodeId;
  /** Highest instance number the sender has heard of, per replica space. */
  readonly known: readonly number[];
  /** Highest j such that the sender has committed every instance 0..j, per space. */
  readonly committedPrefix: readonly number[];
  /** Highest j such that the sender has executed every instance 0..j, per space: below what every
   * replica executed, instances are garbage-collected (gc-watermark.ts). */
  readonly executedPrefix: readonly number[];
  mac?: string;
};

/** One executed instance, as a snapshot carries it. */
export type ExecutedInstance = {
  readonly replica: NodeId;
  readonly instance: number;
  readonly ballot: number;
  readonly cmd: Command;
  readonly seq: number;
  readonly deps: readonly number[];
};

/**
 * State transfer, for a replica that needs instances its peers have garbage-collected (it lost
 * its state: an amnesiac restart, outside EPaxos's fault model). The sender's state machine with
 * exactly what produced it: every instance of its `executedPrefix`, and `executed`, the instances
 * it executed out of order above that prefix.
 */
export type SnapshotMessage = {
  readonly type: 'SNAPSHOT';
  readonly from: NodeId;
  readonly state: StateSnapshot;
  /** The sender's GC watermark (every replica executed up to it). */
  readonly collectedUpTo: readonly number[];
  /** Below this the sender holds no record: it cannot send those commits, only this snapshot. */
  readonly droppedUpTo: readonly number[];
  readonly executedPrefix: readonly number[];
  readonly known: readonly number[];
  readonly executed: readonly ExecutedInstance[];
  /** The exactly-once windows (executed-requests.ts), per client. */
  readonly requests: readonly ClientWindowState[];
  mac?: string;
};

export type EpaxosMessage =
  | PreAcceptMessage
  | PreAcceptReplyMessage
  | AcceptMessage
  | AcceptReplyMessage
  | CommitMessage
  | PrepareMessage
  | PrepareReplyMessage
  | SyncMessage
  | SnapshotMessage;

export const VOTE_TYPES: ReadonlySet<string> = new Set(['PRE_ACCEPT_REPLY', 'ACCEPT_REPLY', 'PREPARE_REPLY']);

const STATUSES: ReadonlySet<string> = new Set(['none', 'preaccepted', 'accepted', 'committed', 'executed']);

const isInt = (v: unknown, min: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= min;
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';

function isDeps(v: unknown, n: number): v is number[] {
  return Array.isArray(v) && v.length === n && v.every((d) => isInt(d, -1));
}

export function isCommand(v: unknown): v is Command {
  if (v === null) return true;
  if (typeof v !== 'object' || v === undefined) return false;
  const r = v as Partial<ClientRequest>;
  if (!isInt(r.clientId, 0) || !isInt(r.requestId, 0) || typeof r.op !== 'object' || r.op === null) return false;
  const op = r.op as unknown as Record<string, unknown>;
  if (typeof op.key !== 'string') return false;
  switch (op.kind) {
    case 'read':
      return true;
    case 'write':
      return typeof op.value === 'string';
    case 'cas':
      return typeof op.value === 'string' && (op.expected === null || typeof op.expected === 'string');
    default:
      return false;
  }
}

function isOperationResult(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return (r.value === null || typeof r.value === 'string') && isBool(r.applied);
}

function isSnapshotShape(m: Message, n: number): boolean {
  const state = m.state as { entries?: unknown } | undefined;
  if (typeof state !== 'object' || state === null || !Array.isArray(state.entries)) return false;
  if (!state.entries.every((e: unknown) => Array.isArray(e) && e.length === 2 && typeof e[0] === 'string' && typeof e[1] === 'string')) return false;
  if (!isDeps(m.collectedUpTo, n) || !isDeps(m.droppedUpTo, n) || !isDeps(m.executedPrefix, n) || !isDeps(m.known, n)) return false;
  if (!Array.isArray(m.executed) || !Array.isArray(m.requests)) return false;
  const executedOk = m.executed.every((e: unknown) => {
    const x = e as Record<string, unknown> | null;
    return typeof x === 'object' && x !== null && isInt(x.replica, 0) && (x.replica as number) < n && isInt(x.instance, 0) && isInt(x.ballot, 0) && isCommand(x.cmd) && isInt(x.seq, 0) && isDeps(x.deps, n);
  });
  const requestsOk = m.requests.every((w: unknown) => {
    const x = w as Record<string, unknown> | null;
    return typeof x === 'object' && x !== null && isInt(x.clientId, 0) && isInt(x.floor, 0) && Array.isArray(x.above) && x.above.every((id) => isInt(id, 0)) && isInt(x.lastId, -1) && isOperationResult(x.lastResult);
  });
  return executedOk && requestsOk;
}

/** Returns the typed message, or null when its shape is wrong for a cluster of n replicas. */
export function parseMessage(m: Message, n: number): EpaxosMessage | null {
  if (!isInt(m.from, 0) || m.from >= n) return null;
  if (m.type === 'SNAPSHOT') return isSnapshotShape(m, n) ? (m as unknown as SnapshotMessage) : null;
  if (m.type === 'SYNC') {
    return isDeps(m.known, n) && isDeps(m.committedPrefix, n) && isDeps(m.executedPrefix, n) ? (m as unknown as SyncMessage) : null;
  }
  if (!isInt(m.ballot, 0) || !isInt(m.replica, 0) || m.replica >= n || !isInt(m.instance, 0)) return null;
  switch (m.type) {
    case 'PRE_ACCEPT':
    case 'ACCEPT':
      return isCommand(m.cmd) && isInt(m.seq, 0) && isDeps(m.deps, n) ? (m as unknown as EpaxosMessage) : null;
    case 'COMMIT':
      return isCommand(m.cmd) && isInt(m.seq, 0) && isDeps(m.deps, n) && isDeps(m.executedEverywhere, n) ? (m as unknown as CommitMessage) : null;
    case 'PREPARE':
      return m as unknown as PrepareMessage;
    case 'PRE_ACCEPT_REPLY':
      return isBool(m.ok) && isInt(m.promised, 0) && isBool(m.committed) && isBool(m.changed) && isCommand(m.cmd) && isInt(m.seq, 0) && isDeps(m.deps, n) && isDeps(m.executedPrefix, n)
        ? (m as unknown as PreAcceptReplyMessage)
        : null;
    case 'ACCEPT_REPLY':
      return isBool(m.ok) && isInt(m.promised, 0) ? (m as unknown as AcceptReplyMessage) : null;
    case 'PREPARE_REPLY':
      return isBool(m.ok) &&
        isInt(m.promised, 0) &&
        typeof m.status === 'string' &&
        STATUSES.has(m.status) &&
        isCommand(m.cmd) &&
        isInt(m.seq, 0) &&
        (m.deps === null || isDeps(m.deps, n)) &&
        isInt(m.vbal, -1) &&
        isBool(m.eq)
        ? (m as unknown as PrepareReplyMessage)
        : null;
    default:
      return null;
  }
}
