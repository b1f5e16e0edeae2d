/**
 * PBFT wire messages and their parsers. Every message arrives as untrusted JSON (a Byzantine peer
 * can send any shape with a valid MAC), so each handler first turns it into a typed value here or
 * drops it; nothing downstream re-checks shapes.
 */
import type { ClientRequest, Message, NodeId, Operation, StateSnapshot } from '../protocol.ts';

export const MSG = {
  request: 'REQUEST',
  prePrepare: 'PRE-PREPARE',
  prepare: 'PREPARE',
  commit: 'COMMIT',
  checkpoint: 'CHECKPOINT',
  viewChange: 'VIEW-CHANGE',
  newView: 'NEW-VIEW',
  fetch: 'FETCH',
  state: 'STATE',
  commitCert: 'COMMIT-CERT',
} as const;

/** A client request a backup forwards to the primary. */
export interface ForwardMsg extends Message {
  readonly type: typeof MSG.request;
  readonly request: ClientRequest;
}

/** An empty batch is PBFT's null request: it fills a sequence number and executes nothing. */
export interface PrePrepareMsg extends Message {
  readonly type: typeof MSG.prePrepare;
  readonly view: number;
  readonly seq: number;
  readonly digest: string;
  readonly batch: readonly ClientRequest[];
}

export interface PrepareMsg extends Message {
  readonly type: typeof MSG.prepare;
  readonly view: number;
  readonly seq: number;
  readonly digest: string;
}

export interface CommitMsg extends Message {
  readonly type: typeof MSG.commit;
  readonly view: number;
  readonly seq: number;
  readonly digest: string;
}

export interface CheckpointMsg extends Message {
  readonly type: typeof MSG.checkpoint;
  readonly seq: number;
  readonly stateDigest: string;
}

/** A pre-prepare plus 2f matching prepares from distinct backups, all as originally signed. */
export interface PreparedCert {
  readonly prePrepare: PrePrepareMsg;
  readonly prepares: readonly PrepareMsg[];
}

/** A pre-prepare plus 2f+1 matching commits: proof that the batch is decided at its seq. */
export interface CommitCert {
  readonly prePrepare: PrePrepareMsg;
  readonly commits: readonly CommitMsg[];
}

export interface ViewChangeMsg extends Message {
  readonly type: typeof MSG.viewChange;
  readonly newView: number;
  readonly stableSeq: number;
  readonly checkpointProof: readonly CheckpointMsg[];
  readonly prepared: readonly PreparedCert[];
}

export interface NewViewMsg extends Message {
  readonly type: typeof MSG.newView;
  readonly newView: number;
  readonly viewChanges: readonly ViewChangeMsg[];
  readonly prePrepares: readonly PrePrepareMsg[];
}

/** "I have executed up to seq-1 and am in `view`": answered with state, commit certificates,
 * checkpoint proof and/or the current NEW-VIEW, whichever the asker lacks. */
export interface FetchMsg extends Message {
  readonly type: typeof MSG.fetch;
  readonly seq: number;
  readonly view: number;
  /** The asker's stable checkpoint: if ours is higher, we send its proof. */
  readonly stable: number;
}

/** [clientId, requestId, value, applied]: one entry of the per-client last-reply cache. */
export type ReplyEntry = readonly [number, number, string | null, boolean];

export interface StateMsg extends Message {
  readonly type: typeof MSG.state;
  readonly seq: number;
  readonly stateDigest: string;
  readonly snapshot: StateSnapshot;
  readonly replies: readonly ReplyEntry[];
  readonly proof: readonly CheckpointMsg[];
}

export interface CommitCertMsg extends Message {
  readonly type: typeof MSG.commitCert;
  readonly certs: readonly CommitCert[];
}

type Obj = Record<string, unknown>;

const isObj = (x: unknown): x is Obj => typeof x === 'object' && x !== null && !Array.isArray(x);
const isNat = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
const isStr = (x: unknown): x is string => typeof x === 'string';

function hasHeader(x: unknown, type: string): x is Obj & { type: string; from: NodeId } {
  return isObj(x) && x.type === type && isNat(x.from);
}

export function parseOperation(x: unknown): Operation | null {
  if (!isObj(x) || !isStr(x.key)) return null;
  if (x.kind === 'read') return x as Operation;
  if (x.kind === 'write' && isStr(x.value)) return x as Operation;
  if (x.kind === 'cas' && isStr(x.value) && (x.expected === null || isStr(x.expected))) return x as Operation;
  return null;
}

export function parseClientRequest(x: unknown): ClientRequest | null {
  if (!isObj(x) || !isNat(x.clientId) || !isNat(x.requestId) || parseOperation(x.op) === null) return null;
  return x as unknown as ClientRequest;
}

function parseArray<T>(x: unknown, parse: (item: unknown) => T | null): T[] | null {
  if (!Array.isArray(x)) return null;
  const out: T[] = [];
  for (const item of x) {
    const parsed = parse(item);
    if (parsed === null) return null;
    out.push(parsed);
  }
  return out;
}

export function parseForward(x: unknown): ForwardMsg | null {
  return hasHeader(x, MSG.request) && parseClientRequest(x.request) !== null ? (x as unknown as ForwardMsg) : null;
}

export function parsePrePrepare(x: unknown): PrePrepareMsg | null {
  if (!hasHeader(x, MSG.prePrepare) || !isNat(x.view) || !isNat(x.seq) || !isStr(x.digest)) return null;
  return parseArray(x.batch, parseClientRequest) === null ? null : (x as unknown as PrePrepareMsg);
}

function parseVote<T extends PrepareMsg | CommitMsg>(type: T['type']) {
  return (x: unknown): T | null => (hasHeader(x, type) && isNat(x.view) && isNat(x.seq) && isStr(x.digest) ? (x as unknown as T) : null);
}
export const parsePrepare = parseVote<PrepareMsg>(MSG.prepare);
export const parseCommit = parseVote<CommitMsg>(MSG.commit);

export function parseCheckpoint(x: unknown): CheckpointMsg | null {
  return hasHeader(x, MSG.checkpoint) && isNat(x.seq) && isStr(x.stateDigest) ? (x as unknown as CheckpointMsg) : null;
}

export function parsePreparedCert(x: unknown): PreparedCert | null {
  if (!isObj(x)) return null;
  const prePrepare = parsePrePrepare(x.prePrepare);
  const prepares = parseArray(x.prepares, parsePrepare);
  return prePrepare && prepares ? { prePrepare, prepares } : null;
}

export function parseCommitCert(x: unknown): CommitCert | null {
  if (!isObj(x)) return null;
  const prePrepare = parsePrePrepare(x.prePrepare);
  const commits = parseArray(x.commits, parseCommit);
  return prePrepare && commits ? { prePrepare, commits } : null;
}

export function parseViewChange(x: unknown): ViewChangeMsg | null {
  if (!hasHeader(x, MSG.viewChange) || !isNat(x.newView) || !isNat(x.stableSeq)) return null;
  const proof = parseArray(x.checkpointProof, parseCheckpoint);
  const prepared = parseArray(x.prepared, parsePreparedCert);
  return proof && prepared ? (x as unknown as ViewChangeMsg) : null;
}

export function parseNewView(x: unknown): NewViewMsg | null {
  if (!hasHeader(x, MSG.newView) || !isNat(x.newView)) return null;
  const viewChanges = parseArray(x.viewChanges, parseViewChange);
  const prePrepares = parseArray(x.prePrepares, parsePrePrepare);
  return viewChanges && prePrepares ? (x as unknown as NewViewMsg) : null;
}

export function parseFetch(x: unknown): FetchMsg | null {
  return hasHeader(x, MSG.fetch) && isNat(x.seq) && isNat(x.view) && isNat(x.stable) ? (x as unknown as FetchMsg) : null;
}

function parseReplyEntry(x: unknown): ReplyEntry | null {
  if (!Array.isArray(x) || x.length !== 4) return null;
  const [clientId, requestId, value, applied] = x as unknown[];
  return isNat(clientId) && isNat(requestId) && (value === null || isStr(value)) && typeof applied === 'boolean'
    ? [clientId, requestId, value, applied]
    : null;
}

function parseSnapshotEntry(x: unknown): readonly [string, string] | null {
  return Array.isArray(x) && x.length === 2 && isStr(x[0]) && isStr(x[1]) ? [x[0], x[1]] : null;
}

export function parseState(x: unknown): StateMsg | null {
  if (!hasHeader(x, MSG.state) || !isNat(x.seq) || !isStr(x.stateDigest) || !isObj(x.snapshot)) return null;
  const entries = parseArray(x.snapshot.entries, parseSnapshotEntry);
  const replies = parseArray(x.replies, parseReplyEntry);
  const proof = parseArray(x.proof, parseCheckpoint);
  if (!entries || !replies || !proof) return null;
  // Extra snapshot fields (e.g. the harness's executedCount) travel along untouched; only the
  // entries are covered by the checkpoint digest.
  return { ...(x as unknown as StateMsg), snapshot: { ...x.snapshot, entries }, replies };
}

export function parseCommitCertMsg(x: unknown): CommitCertMsg | null {
  if (!hasHeader(x, MSG.commitCert)) return null;
  return parseArray(x.certs, parseCommitCert) === null ? null : (x as unknown as CommitCertMsg);
}

export function requestKey(request: ClientRequest): string {
  return `${request.clientId}:${request.requestId}`;
}
