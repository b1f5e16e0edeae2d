/**
 * The data EPaxos agrees on. An instance `L.i` is slot i of replica L's own instance space; its
 * attributes are (command, seq, deps). Deps are a vector with one entry per replica, as in the
 * reference implementation: `deps[q] = j` means "after every instance q.0..q.j", so a no-op that
 * replaces a lost instance never breaks a transitive dependency chain. -1 means none.
 */
import type { ClientRequest, NodeId, Operation } from '../protocol.ts';

/** A client request, or null for the no-op recovery commits when nothing is known. */
export type Command = ClientRequest | null;

export interface InstanceId {
  readonly replica: NodeId;
  readonly instance: number;
}

export type InstanceStatus = 'none' | 'preaccepted' | 'accepted' | 'committed' | 'executed';

export interface Attributes {
  readonly cmd: Command;
  readonly seq: number;
  readonly deps: readonly number[];
}

/** Ballot 0 is the command leader's default ballot; recovery ballots are counter·n + owner, counter ≥ 1. */
export const DEFAULT_BALLOT = 0;
/** "Never voted" for vbal. */
export const NO_BALLOT = -1;

/** What one replica durably knows about one instance. */
export interface InstanceRecord {
  readonly id: InstanceId;
  status: InstanceStatus;
  attrs: Attributes | null;
  /** Highest ballot promised (Prepare) or voted in. */
  promised: number;
  /** Ballot of the last vote (pre-accept or accept): the Sutra 2019 fix keeps it apart from `promised`. */
  vbal: number;
  /** Pre-accepted at the default ballot with exactly the leader's proposed attributes (Go's PREACCEPTED_EQ). */
  preAcceptedEq: boolean;
  /** Local time of the last sign of progress, for deciding when to recover. */
  lastProgressUs: number;
  /** When this replica next may start recovery on its own (randomised so replicas do not duel). */
  recoverAfterUs: number;
  /** When this replica, leading the instance, last asked for votes (0: never): late votes are timed against it too. */
  votesOpenedUs: number;
}

export function instanceKey(id: InstanceId): string {
  return `${id.replica}.${id.instance}`;
}

export function emptyDeps(n: number): number[] {
  return new Array<number>(n).fill(-1);
}

export function sameDeps(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function sameAttributes(a: Attributes, b: Attributes): boolean {
  return a.seq === b.seq && sameDeps(a.deps, b.deps) && sameCommand(a.cmd, b.cmd);
}

export function sameCommand(a: Command, b: Command): boolean {
  if (a === null || b === null) return a === b;
  return a.clientId === b.clientId && a.requestId === b.requestId && sameOperation(a.op, b.op);
}

function sameOperation(a: Operation, b: Operation): boolean {
  if (a === b) return true;
  if (a.kind !== b.kind || a.key !== b.key) return false;
  switch (a.kind) {
    case 'read':
      return true;
    case 'write':
      return a.value === (b as typeof a).value;
    case 'cas':
      return a.value === (b as typeof a).value && a.expected === (b as typeof a).expected;
  }
}

/** Element-wise max of deps and max of seq: the slow path's union of pre-accept replies. */
export function unionAttributes(a: Attributes, b: Attributes): Attributes {
  const deps = a.deps.map((d, i) => Math.max(d, b.deps[i] ?? -1));
  return { cmd: a.cmd, seq: Math.max(a.seq, b.seq), deps };
}

/** Entries of the deps vector that point at something, for the trace's deps_count. */
export function depsCount(deps: readonly number[]): number {
  let count = 0;
  for (const d of deps) if (d >= 0) count++;
  return count;
}

export function requestKey(clientId: number, requestId: number): string {
  return `${clientId}:${requestId}`;
}
