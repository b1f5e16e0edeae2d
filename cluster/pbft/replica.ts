/**
 * One PBFT replica (Castro & Liskov): normal case, checkpoints with garbage collection, state
 * transfer, and view change. All effects go through ReplicaEnv, so a seed replays a run exactly.
 *
 * Robustness beyond the paper's happy path (the simulator loses, duplicates and reorders
 * messages): while a replica has unfinished work it periodically re-sends its own messages, and
 * a replica that sees it is behind asks a peer with FETCH, which is answered with commit
 * certificates, the stable checkpoint's state, or the current NEW-VIEW.
 */
import { hasMutation } from '../protocol.ts';
import type {
  ClientRequest,
  Message,
  NodeId,
  OperationResult,
  ProtocolOptions,
  Replica,
  ReplicaEnv,
  ReplicaProgress,
  StateSnapshot,
  TimerHandle,
  Transition,
} from '../protocol.ts';
import {
  checkpointProofDigest,
  computeNewViewPlan,
  primaryOf,
  validCommitCert,
  validViewChange,
  verifyNewView,
  type NewViewPlan,
  type QuorumContext,
} from './certificates.ts';
import { batchDigest, checkpointDigest } from './digest.ts';
import {
  MSG,
  parseCheckpoint,
  parseClientRequest,
  parseCommit,
  parseCommitCertMsg,
  parseFetch,
  parseForward,
  parseNewView,
  parsePrepare,
  parsePrePrepare,
  parseState,
  type CheckpointMsg,
  type CommitCert,
  type CommitMsg,
  type NewViewMsg,
  type PreparedCert,
  type PrepareMsg,
  type PrePrepareMsg,
  type ReplyEntry,
  type ViewChangeMsg,
} from './messages.ts';

/** Pre-prepares the primary keeps in flight before it waits and batches what queues up. */
const PIPELINE_DEPTH = 4;
/** Commit certificates sent per FETCH answer. */
const FETCH_BATCH = 16;
/** Slots re-sent per retransmission round. */
const RETRANSMIT_SLOTS = 32;
/** A VIEW-CHANGE further ahead than this is ignored (bounds what a Byzantine peer can make us store). */
const MAX_VIEW_AHEAD = 1024;
/** Timeouts stop doubling after this many consecutive view changes. */
const MAX_BACKOFF_EXPONENT = 10;

const TIMER_PROGRESS = 'pbft/progress';
const TIMER_RETRANSMIT = 'pbft/retransmit';

interface SlotEntry {
  prePrepare: PrePrepareMsg | null;
  readonly prepares: Map<NodeId, PrepareMsg>;
  readonly commits: Map<NodeId, CommitMsg>;
  sentPrepare: PrepareMsg | null;
  sentCommit: CommitMsg | null;
  prepared: boolean;
  committed: boolean;
  /** When this node first heard of the slot (its clock): where a quorum's wait starts. */
  readonly openedUs: number;
  /** When the prepare quorum completed: where the commit quorum's wait starts. */
  preparedUs: number;
}

interface OwnCheckpoint {
  readonly digest: string;
  readonly snapshot: StateSnapshot;
  readonly replies: readonly ReplyEntry[];
}

interface CachedReply {
  readonly requestId: number;
  readonly result: OperationResult;
}

/** What tests and the harness may inspect; not part of the protocol. */
export interface PbftReplicaStatus {
  readonly view: number;
  readonly status: 'normal' | 'view-change';
  readonly lowWater: number;
  readonly lastExecuted: number;
  /** Entries held for sequence numbers (slots, certificates, decided batches): bounded by GC. */
  readonly logSize: number;
  readonly pending: number;
  readonly pendingView: number;
  readonly knownMaxSeq: number;
  readonly knownMaxView: number;
}

export class PbftReplica implements Replica {
  private readonly env: ReplicaEnv;
  private readonly options: ProtocolOptions;
  private readonly ctx: QuorumContext;
  private readonly n: number;
  private readonly f: number;
  private readonly mutantPrepareQuorum: boolean;
  private readonly mutantCommitQuorum: boolean;

  private view = 0;
  private status: 'normal' | 'view-change' = 'normal';
  private pendingView = 0;
  private consecutiveViewChanges = 0;
  private newViewMsg: NewViewMsg | null = null;
  private ownViewChange: ViewChangeMsg | null = null;
  private readonly viewChanges = new Map<number, Map<NodeId, ViewChangeMsg>>();

  private lowWater = 0;
  private stableProof: readonly CheckpointMsg[] = [];
  private lastExecuted = 0;
  private nextSeq = 1;
  private knownMaxSeq = 0;
  private knownMaxView = 0;

  private readonly slots = new Map<number, Map<number, SlotEntry>>();
  private readonly preparedCerts = new Map<number, PreparedCert>();
  private readonly decided = new Map<number, CommitCert>();
  private readonly checkpointVotes = new Map<number, Map<NodeId, CheckpointMsg>>();
  private readonly ownCheckpoints = new Map<number, OwnCheckpoint>();
  private readonly replies = new Map<number, CachedReply>();

  /** Client requests known here and not yet executed; clients have one outstanding each. */
  private readonly pending = new Map<number, ClientRequest>();
  /** Requests the primary has put in a pre-prepare of the current view (clientId → requestId). */
  private readonly assigned = new Map<number, number>();
  /** When each client's latest request first reached this replica (for latency). */
  private readonly arrivals = new Map<number, { requestId: number; atUs: number }>();

  private progressTimer: { handle: TimerHandle; token: number } | null = null;
  private retransmitTimer: { handle: TimerHandle; token: number } | null = null;
  private timerToken = 0;
  private fetchCursor = 0;
  private unreportedRetransmissions = 0;

  constructor(env: ReplicaEnv, options: ProtocolOptions) {
    this.env = env;
    this.options = options;
    this.n = env.replicas.length;
    this.f = env.f;
    this.ctx = { n: this.n, f: this.f, auth: env.auth, logWindow: options.logWindow, mutations: options.mutations };
    this.mutantPrepareQuorum = hasMutation(options, 'prepare-quorum-f');
    this.mutantCommitQuorum = hasMutation(options, 'commit-quorum-2f');
  }

  // ---- Replica interface -------------------------------------------------------------------

  start(): void {
    // Timers do not survive a crash; durable state does, so re-arm from it.
    this.progressTimer = null;
    this.retransmitTimer = null;
    if (this.status === 'view-change') this.armViewChangeTimer();
    else this.armRequestTimer();
    this.tryPropose();
    this.armRetransmit();
  }

  onClientRequest(request: ClientRequest): void {
    const parsed = parseClientRequest(request);
    if (parsed && this.env.auth.verifyRequest(parsed)) this.handleRequest(parsed, true);
  }

  onMessage(message: Message): void {
    if (typeof message !== 'object' || message === null) return;
    const from = message.from;
    if (typeof from !== 'number' || !Number.isInteger(from) || from < 0 || from >= this.n || from === this.env.id) return this.env.telemetry.rejected('malformed');
    if (!this.env.auth.verify(message)) return this.env.telemetry.rejected('bad_mac');
    switch (message.type) {
      case MSG.request: {
        const fwd = parseForward(message);
        // The forwarding backup vouches for nothing: the request needs its client's MAC.
        if (fwd && this.env.auth.verifyRequest(fwd.request)) this.handleRequest(fwd.request, false);
        return;
      }
      case MSG.prePrepare:
        return this.onPrePrepare(message);
      case MSG.prepare:
        return this.onPrepare(message);
      case MSG.commit:
        return this.onCommit(message);
      case MSG.checkpoint: {
        const cp = parseCheckpoint(message);
        if (cp) this.recordCheckpointVote(cp);
        return;
      }
      case MSG.viewChange:
        return this.onViewChange(message);
      case MSG.newView:
        return this.onNewView(message);
      case MSG.fetch:
        return this.onFetch(message);
      case MSG.state:
        return this.onState(message);
      case MSG.commitCert:
        return this.onCommitCerts(message);
      default:
        return this.env.telemetry.rejected('malformed');
    }
  }

  onTimer(name: string, data: unknown): void {
    const token = typeof data === 'object' && data !== null ? (data as { token?: unknown }).token : undefined;
    if (name === TIMER_PROGRESS && this.progressTimer?.token === token) {
      this.progressTimer = null;
      this.onProgressTimeout();
    } else if (name === TIMER_RETRANSMIT && this.retransmitTimer?.token === token) {
      this.retransmitTimer = null;
      this.onRetransmit();
    }
  }

  inspect(): PbftReplicaStatus {
    let slotCount = 0;
    for (const byView of this.slots.values()) slotCount += byView.size;
    return {
      view: this.view,
      status: this.status,
      lowWater: this.lowWater,
      lastExecuted: this.lastExecuted,
      logSize: slotCount + this.preparedCerts.size + this.decided.size + this.checkpointVotes.size + this.ownCheckpoints.size,
      pending: this.pending.size,
      pendingView: this.pendingView,
      knownMaxSeq: this.knownMaxSeq,
      knownMaxView: this.knownMaxView,
    };
  }

  /** O(clients): the oldest waiting request is found among one pending request per client. */
  progressReport(): ReplicaProgress {
    let oldest: number | null = null;
    for (const [clientId, request] of this.pending) {
      const arrival = this.arrivals.get(clientId);
      if (arrival !== undefined && arrival.requestId === request.requestId && (oldest === null || arrival.atUs < oldest)) oldest = arrival.atUs;
    }
    return {
      view: this.view,
      leader: primaryOf(this.view, this.n),
      viewChanging: this.status === 'view-change',
      backlog: this.pending.size,
      oldestRequestUs: oldest,
      committed: this.lastExecuted,
      executed: this.lastExecuted,
      // Sequence numbers with slots (not slots per view, which inspect() counts): O(1).
      logSize: this.slots.size + this.preparedCerts.size + this.decided.size + this.checkpointVotes.size + this.ownCheckpoints.size,
    };
  }

  // ---- helpers ------------------------------------------------------------------------------

  private get id(): NodeId {
    return this.env.id;
  }

  private isPrimary(): boolean {
    return primaryOf(this.view, this.n) === this.id;
  }

  private sign<T extends Message>(message: T): T {
    return this.env.auth.sign(message) as T;
  }

  private trace(t: Omit<Transition, 'leader'> & { leader?: NodeId }): void {
    const retransmissions = this.unreportedRetransmissions;
    this.unreportedRetransmissions = 0;
    this.env.trace({
      phase: t.phase,
      view: t.view,
      seq: t.seq,
      leader: t.leader ?? primaryOf(t.view, this.n),
      batchSize: t.batchSize,
      depsCount: t.depsCount,
      latencyUs: t.latencyUs,
      retransmissions: t.retransmissions ?? retransmissions,
    });
  }

  private inWindow(seq: number): boolean {
    return seq > this.lowWater && seq <= this.lowWater + this.options.logWindow;
  }

  private slot(seq: number, view: number): SlotEntry {
    let byView = this.slots.get(seq);
    if (!byView) this.slots.set(seq, (byView = new Map()));
    let entry = byView.get(view);
    if (!entry) {
      entry = { prePrepare: null, prepares: new Map(), commits: new Map(), sentPrepare: null, sentCommit: null, prepared: false, committed: false, openedUs: this.env.nowUs(), preparedUs: 0 };
      byView.set(view, entry);
    }
    return entry;
  }

  private authenticRequests(batch: readonly ClientRequest[]): boolean {
    for (const request of batch) if (!this.env.auth.verifyRequest(request)) return false;
    return true;
  }

  private isExecuted(request: ClientRequest): boolean {
    const cached = this.replies.get(request.clientId);
    return cached !== undefined && request.requestId <= cached.requestId;
  }

  private noteArrival(request: ClientRequest, atUs: number): void {
    const known = this.arrivals.get(request.clientId);
    if (!known || known.requestId < request.requestId) this.arrivals.set(request.clientId, { requestId: request.requestId, atUs });
  }

  private noteSeen(view: number, seq: number): void {
    if (view > this.knownMaxView) this.knownMaxView = view;
    if (view >= this.view && seq > this.knownMaxSeq) this.knownMaxSeq = seq;
    this.armRetransmit();
  }

  // ---- requests -----------------------------------------------------------------------------

  private handleRequest(request: ClientRequest, fromClient: boolean): void {
    const cached = this.replies.get(request.clientId);
    if (cached && request.requestId <= cached.requestId) {
      // A retransmission of something already executed: the reply was lost, send it again.
      if (fromClient && request.requestId === cached.requestId) {
        this.sendReply(request, cached.result);
        this.unreportedRetransmissions++;
        this.trace({ phase: 'reply', view: this.view, seq: this.lastExecuted, batchSize: 1 });
      }
      return;
    }
    const known = this.pending.get(request.clientId);
    if (!known || known.requestId < request.requestId) {
      this.pending.set(request.clientId, request);
      this.noteArrival(request, this.env.nowUs());
      this.trace({ phase: 'request', view: this.view, seq: 0, batchSize: 1 });
    }
    if (this.isPrimary()) {
      this.tryPropose();
    } else if (fromClient) {
      // The client gave up on the primary and broadcast: relay and start suspecting it.
      this.env.send(primaryOf(this.view, this.n), this.sign({ type: MSG.request, from: this.id, request }));
      this.armRequestTimer();
    }
  }

  private tryPropose(): void {
    if (this.status !== 'normal' || !this.isPrimary()) return;
    while (this.nextSeq <= this.lowWater + this.options.logWindow && this.nextSeq - 1 - this.lastExecuted < PIPELINE_DEPTH) {
      const batch: ClientRequest[] = [];
      for (const request of this.pending.values()) {
        if ((this.assigned.get(request.clientId) ?? -1) >= request.requestId) continue;
        batch.push(request);
        if (batch.length >= this.options.batchSizeMax) break;
      }
      if (batch.length === 0) return;
      const seq = this.nextSeq++;
      const pp = this.sign<PrePrepareMsg>({ type: MSG.prePrepare, from: this.id, view: this.view, seq, digest: batchDigest(batch), batch });
      this.env.broadcast(pp);
      this.acceptPrePrepare(pp);
    }
  }

  // ---- normal case --------------------------------------------------------------------------

  private onPrePrepare(message: Message): void {
    const pp = parsePrePrepare(message);
    if (!pp) return this.env.telemetry.rejected('malformed');
    if (pp.from !== primaryOf(pp.view, this.n)) return this.env.telemetry.rejected('not_from_primary');
    this.noteSeen(pp.view, pp.seq);
    if (this.status !== 'normal' || pp.view !== this.view) return this.env.telemetry.rejected('wrong_view');
    if (!this.inWindow(pp.seq)) return this.env.telemetry.rejected('outside_watermarks');
    if (pp.batch.length > this.options.batchSizeMax) return this.env.telemetry.rejected('malformed');
    if (batchDigest(pp.batch) !== pp.digest) return this.env.telemetry.rejected('wrong_digest');
    // Every request must carry its client's MAC: a faulty primary cannot order a request that no
    // client sent. (A NEW-VIEW's batches need no such check: each is certified by 2f+1 prepares.)
    if (!this.authenticRequests(pp.batch)) return this.env.telemetry.rejected('bad_mac');
    this.acceptPrePrepare(pp);
  }

  /** Also used for the pre-prepares of a verified NEW-VIEW, which may be null requests. */
  private acceptPrePrepare(pp: PrePrepareMsg): void {
    const entry = this.slot(pp.seq, pp.view);
    // Never a second digest at (v, n): an equivocating primary's second pre-prepare stops here.
    if (entry.prePrepare) return this.env.telemetry.rejected(entry.prePrepare.digest === pp.digest ? 'duplicate' : 'conflicting_pre_prepare');
    entry.prePrepare = pp;
    const now = this.env.nowUs();
    for (const request of pp.batch) {
      if ((this.assigned.get(request.clientId) ?? -1) < request.requestId) this.assigned.set(request.clientId, request.requestId);
      if (!this.isExecuted(request)) this.noteArrival(request, now);
    }
    if (pp.seq > this.knownMaxSeq) this.knownMaxSeq = pp.seq;
    if (primaryOf(pp.view, this.n) !== this.id) {
      const prepare = this.sign<PrepareMsg>({ type: MSG.prepare, from: this.id, view: pp.view, seq: pp.seq, digest: pp.digest });
      entry.prepares.set(this.id, prepare);
      entry.sentPrepare = prepare;
      this.env.broadcast(prepare);
    }
    this.trace({ phase: 'pre_prepare', view: pp.view, seq: pp.seq, batchSize: pp.batch.length });
    this.advanceSlot(pp.seq, pp.view, pp.from);
    this.armRetransmit();
  }

  private onPrepare(message: Message): void {
    const prepare = parsePrepare(message);
    // The primary's pre-prepare is its prepare: a PREPARE from it is not part of the protocol.
    if (!prepare || prepare.from === primaryOf(prepare.view, this.n)) return this.env.telemetry.rejected('malformed');
    this.noteSeen(prepare.view, prepare.seq);
    if (this.status !== 'normal' || prepare.view !== this.view) return this.env.telemetry.rejected('wrong_view');
    if (!this.inWindow(prepare.seq)) return this.env.telemetry.rejected('outside_watermarks');
    const entry = this.slot(prepare.seq, prepare.view);
    if (entry.prepares.has(prepare.from)) return this.env.telemetry.rejected('duplicate');
    this.env.telemetry.voteReceived(prepare.from, this.env.nowUs() - entry.openedUs);
    // Kept (a later pre-prepare may match it), but it does not count towards this digest's quorum.
    if (entry.prePrepare !== null && entry.prePrepare.digest !== prepare.digest) this.env.telemetry.rejected('wrong_digest');
    entry.prepares.set(prepare.from, prepare);
    this.advanceSlot(prepare.seq, prepare.view, prepare.from);
  }

  private onCommit(message: Message): void {
    const commit = parseCommit(message);
    if (!commit) return this.env.telemetry.rejected('malformed');
    this.noteSeen(commit.view, commit.seq);
    if (this.status !== 'normal' || commit.view !== this.view) return this.env.telemetry.rejected('wrong_view');
    if (!this.inWindow(commit.seq)) return this.env.telemetry.rejected('outside_watermarks');
    const entry = this.slot(commit.seq, commit.view);
    if (entry.commits.has(commit.from)) return this.env.telemetry.rejected('duplicate');
    this.env.telemetry.voteReceived(commit.from, this.env.nowUs() - (entry.prepared ? entry.preparedUs : entry.openedUs));
    if (entry.prePrepare !== null && entry.prePrepare.digest !== commit.digest) this.env.telemetry.rejected('wrong_digest');
    entry.commits.set(commit.from, commit);
    this.advanceSlot(commit.seq, commit.view, commit.from);
  }

  /** `from`: whose message just arrived for this slot (the peer that completes a quorum, if one completes). */
  private advanceSlot(seq: number, view: number, from: NodeId): void {
    const entry = this.slots.get(seq)?.get(view);
    const pp = entry?.prePrepare;
    if (!entry || !pp) return;
    if (!entry.prepared) {
      // Mutation 'prepare-quorum-f' (deliberate bug, tests only): f matching prepares instead of 2f.
      if (countMatching(entry.prepares, pp.digest) < (this.mutantPrepareQuorum ? this.f : 2 * this.f)) return;
      const prepares = matching(entry.prepares, pp.digest);
      entry.prepared = true;
      entry.preparedUs = this.env.nowUs();
      this.env.telemetry.quorumCompleted(entry.preparedUs - entry.openedUs, from);
      const existing = this.preparedCerts.get(seq);
      if (!existing || existing.prePrepare.view <= view) this.preparedCerts.set(seq, { prePrepare: pp, prepares });
      this.trace({ phase: 'prepare', view, seq, batchSize: pp.batch.length });
      const commit = this.sign<CommitMsg>({ type: MSG.commit, from: this.id, view, seq, digest: pp.digest });
      entry.commits.set(this.id, commit);
      entry.sentCommit = commit;
      this.env.broadcast(commit);
    }
    if (!entry.committed) {
      // Mutation 'commit-quorum-2f' (deliberate bug, tests only): 2f matching commits instead of 2f+1.
      if (countMatching(entry.commits, pp.digest) < (this.mutantCommitQuorum ? 2 * this.f : 2 * this.f + 1)) return;
      const commits = matching(entry.commits, pp.digest);
      entry.committed = true;
      this.env.telemetry.quorumCompleted(this.env.nowUs() - entry.preparedUs, from);
      this.trace({ phase: 'commit', view, seq, batchSize: pp.batch.length });
      this.decide(seq, { prePrepare: pp, commits });
    }
  }

  private decide(seq: number, cert: CommitCert): void {
    if (seq <= this.lowWater || this.decided.has(seq)) return;
    this.decided.set(seq, cert);
    if (seq > this.knownMaxSeq) this.knownMaxSeq = seq;
    this.executeReady();
  }

  private executeReady(): void {
    for (let cert = this.decided.get(this.lastExecuted + 1); cert; cert = this.decided.get(this.lastExecuted + 1)) {
      this.execute(this.lastExecuted + 1, cert.prePrepare);
    }
    this.refreshRetransmit();
  }

  private execute(seq: number, pp: PrePrepareMsg): void {
    const now = this.env.nowUs();
    let firstArrival: number | null = null;
    let replied = 0;
    let executedRequest = false;
    for (const request of pp.batch) {
      const arrival = this.arrivals.get(request.clientId);
      if (arrival && arrival.requestId === request.requestId) {
        firstArrival = firstArrival === null ? arrival.atUs : Math.min(firstArrival, arrival.atUs);
        this.arrivals.delete(request.clientId);
      }
      const cached = this.replies.get(request.clientId);
      if (cached && request.requestId <= cached.requestId) {
        // Ordered twice (e.g. re-proposed after a view change): executed once, answered again.
        if (request.requestId === cached.requestId) {
          this.sendReply(request, cached.result);
          replied++;
        }
        continue;
      }
      const result = this.env.stateMachine.execute(request.op, request);
      this.replies.set(request.clientId, { requestId: request.requestId, result });
      const waiting = this.pending.get(request.clientId);
      if (waiting && waiting.requestId <= request.requestId) this.pending.delete(request.clientId);
      this.sendReply(request, result);
      replied++;
      executedRequest = true;
    }
    this.lastExecuted = seq;
    const latencyUs = firstArrival === null ? null : Math.max(0, now - firstArrival);
    this.trace({ phase: 'execute', view: pp.view, seq, batchSize: pp.batch.length, latencyUs });
    if (replied > 0) this.trace({ phase: 'reply', view: this.view, seq, batchSize: replied, latencyUs });
    if (seq % this.options.checkpointInterval === 0) this.takeCheckpoint(seq);
    if (executedRequest && this.status === 'normal') {
      this.consecutiveViewChanges = 0;
      // The paper's timer rule: progress stops the timer; restart it if still waiting.
      this.cancelProgressTimer();
      this.armRequestTimer();
    }
    this.tryPropose();
  }

  private sendReply(request: ClientRequest, result: OperationResult): void {
    this.env.replyToClient({ clientId: request.clientId, requestId: request.requestId, result, replica: this.id, view: this.view });
  }

  // ---- checkpoints and state transfer -------------------------------------------------------

  private replyEntries(): ReplyEntry[] {
    return [...this.replies.entries()].map(([clientId, r]) => [clientId, r.requestId, r.result.value, r.result.applied] as const);
  }

  private takeCheckpoint(seq: number): void {
    const snapshot = this.env.stateMachine.snapshot();
    const replies = this.replyEntries();
    const digest = checkpointDigest(snapshot, replies);
    this.ownCheckpoints.set(seq, { digest, snapshot, replies });
    const cp = this.sign<CheckpointMsg>({ type: MSG.checkpoint, from: this.id, seq, stateDigest: digest });
    this.env.broadcast(cp);
    this.recordCheckpointVote(cp);
  }

  private recordCheckpointVote(cp: CheckpointMsg): void {
    if (cp.seq <= this.lowWater || cp.seq % this.options.checkpointInterval !== 0) return;
    if (cp.seq > this.lowWater + 2 * this.options.logWindow) {
      // Far ahead of us: do not store it, just go and fetch state.
      this.noteSeen(this.view, cp.seq);
      return;
    }
    let votes = this.checkpointVotes.get(cp.seq);
    if (!votes) this.checkpointVotes.set(cp.seq, (votes = new Map()));
    if (votes.has(cp.from)) return;
    votes.set(cp.from, cp);
    const matching = [...votes.values()].filter((v) => v.stateDigest === cp.stateDigest);
    if (matching.length < 2 * this.f + 1) return;
    const own = this.ownCheckpoints.get(cp.seq);
    if (own && own.digest === cp.stateDigest) {
      this.makeStable(cp.seq, matching);
    } else {
      // Behind, or our state diverged from the certified one: fetch the certified state.
      if (cp.seq > this.knownMaxSeq) this.knownMaxSeq = cp.seq;
      this.sendFetch(matching.map((m) => m.from));
    }
  }

  private makeStable(seq: number, proof: readonly CheckpointMsg[]): void {
    if (seq <= this.lowWater) return;
    this.lowWater = seq;
    this.stableProof = proof;
    for (const s of this.slots.keys()) if (s <= seq) this.slots.delete(s);
    for (const s of this.preparedCerts.keys()) if (s <= seq) this.preparedCerts.delete(s);
    for (const s of this.decided.keys()) if (s <= seq) this.decided.delete(s);
    for (const s of this.checkpointVotes.keys()) if (s <= seq) this.checkpointVotes.delete(s);
    for (const s of this.ownCheckpoints.keys()) if (s < seq) this.ownCheckpoints.delete(s);
    if (this.nextSeq <= seq) this.nextSeq = seq + 1;
    this.trace({ phase: 'checkpoint', view: this.view, seq });
    this.tryPropose();
    this.refreshRetransmit();
  }

  private sendFetch(candidates?: readonly NodeId[]): void {
    const peers = (candidates ?? this.env.replicas).filter((r) => r !== this.id);
    if (peers.length === 0) return;
    const to = peers[this.fetchCursor++ % peers.length];
    if (to === undefined) return;
    this.env.send(to, this.sign({ type: MSG.fetch, from: this.id, seq: this.lastExecuted + 1, view: this.view, stable: this.lowWater }));
    this.armRetransmit();
  }

  private onFetch(message: Message): void {
    const fetch = parseFetch(message);
    if (!fetch) return;
    if (fetch.view < this.view && this.newViewMsg) this.env.send(fetch.from, this.newViewMsg);
    const own = this.ownCheckpoints.get(this.lowWater);
    if (fetch.seq <= this.lowWater && this.lowWater > 0 && own) {
      this.env.send(
        fetch.from,
        this.sign({
          type: MSG.state,
          from: this.id,
          seq: this.lowWater,
          stateDigest: own.digest,
          snapshot: own.snapshot,
          replies: own.replies,
          proof: this.stableProof,
        }),
      );
      return;
    }
    if (fetch.stable < this.lowWater && own) {
      // The asker executed past our stable checkpoint but missed votes for it: forward the
      // proof (each vote keeps its original MAC).
      for (const vote of this.stableProof) this.env.send(fetch.from, vote);
    }
    const certs: CommitCert[] = [];
    for (let s = Math.max(fetch.seq, this.lowWater + 1); certs.length < FETCH_BATCH; s++) {
      const cert = this.decided.get(s);
      if (!cert) break;
      certs.push(cert);
    }
    if (certs.length > 0) this.env.send(fetch.from, this.sign({ type: MSG.commitCert, from: this.id, certs }));
  }

  private onCommitCerts(message: Message): void {
    const msg = parseCommitCertMsg(message);
    if (!msg) return;
    for (const item of msg.certs) {
      const cert = validCommitCert(this.ctx, item);
      if (cert && cert.prePrepare.seq > this.lastExecuted) this.decide(cert.prePrepare.seq, cert);
    }
  }

  private onState(message: Message): void {
    const state = parseState(message);
    if (!state || state.seq <= this.lowWater || state.seq % this.options.checkpointInterval !== 0) return;
    const certified = checkpointProofDigest(this.ctx, state.seq, state.proof);
    if (certified === null || certified !== state.stateDigest) return;
    if (checkpointDigest(state.snapshot, state.replies) !== certified) return;
    const own = this.ownCheckpoints.get(state.seq);
    if (own && own.digest === certified) {
      this.makeStable(state.seq, state.proof);
      return;
    }
    const diverged = own !== undefined && own.digest !== certified;
    if (!diverged && state.seq <= this.lastExecuted) {
      // We executed past it without a checkpoint record to compare: the proof alone certifies it.
      this.makeStable(state.seq, state.proof);
      return;
    }
    this.env.stateMachine.restore(state.snapshot);
    this.replies.clear();
    for (const [clientId, requestId, value, applied] of state.replies) this.replies.set(clientId, { requestId, result: { value, applied } });
    for (const [clientId, request] of this.pending) if (this.isExecuted(request)) this.pending.delete(clientId);
    this.ownCheckpoints.set(state.seq, { digest: certified, snapshot: state.snapshot, replies: state.replies });
    // Decided batches above the checkpoint are kept and re-executed on top of the restored state.
    this.lastExecuted = state.seq;
    this.makeStable(state.seq, state.proof);
    this.trace({ phase: 'state_transfer', view: this.view, seq: state.seq });
    this.executeReady();
  }

  // ---- view change --------------------------------------------------------------------------

  private timeoutFor(attempt: number): number {
    return this.options.timeoutUs * 2 ** Math.min(attempt, MAX_BACKOFF_EXPONENT);
  }

  private armProgressTimer(afterUs: number): void {
    if (this.progressTimer) return;
    const token = ++this.timerToken;
    this.progressTimer = { handle: this.env.setTimer(afterUs, TIMER_PROGRESS, { token }), token };
  }

  private cancelProgressTimer(): void {
    if (this.progressTimer) this.env.cancelTimer(this.progressTimer.handle);
    this.progressTimer = null;
  }

  /** Backups suspect the primary while some request they know of is not executed. */
  private armRequestTimer(): void {
    if (this.status !== 'normal' || this.isPrimary() || this.pending.size === 0) return;
    this.armProgressTimer(this.timeoutFor(this.consecutiveViewChanges));
  }

  /** The paper starts the view-change timer only once 2f+1 replicas want the same new view,
   * so a replica that alone lost its patience does not race through views. */
  private armViewChangeTimer(): void {
    if (this.status !== 'view-change') return;
    if ((this.viewChanges.get(this.pendingView)?.size ?? 0) < 2 * this.f + 1) return;
    this.armProgressTimer(this.timeoutFor(this.consecutiveViewChanges));
  }

  private onProgressTimeout(): void {
    if (this.status === 'normal') {
      if (!this.isPrimary() && this.pending.size > 0) this.startViewChange(this.view + 1);
    } else {
      this.startViewChange(this.pendingView + 1);
    }
  }

  private startViewChange(target: number): void {
    if (target <= this.view || (this.status === 'view-change' && target <= this.pendingView)) return;
    this.status = 'view-change';
    this.pendingView = target;
    this.consecutiveViewChanges++;
    this.cancelProgressTimer();
    const prepared = [...this.preparedCerts.entries()]
      .filter(([seq]) => seq > this.lowWater)
      .sort(([a], [b]) => a - b)
      .map(([, cert]) => cert);
    const vc = this.sign<ViewChangeMsg>({
      type: MSG.viewChange,
      from: this.id,
      newView: target,
      stableSeq: this.lowWater,
      checkpointProof: this.stableProof,
      prepared,
    });
    this.ownViewChange = vc;
    this.storeViewChange(vc);
    this.env.broadcast(vc);
    this.trace({ phase: 'view_change', view: target, seq: this.lowWater });
    this.maybeSendNewView(target);
    this.armViewChangeTimer();
    this.armRetransmit();
  }

  private storeViewChange(vc: ViewChangeMsg): void {
    let byView = this.viewChanges.get(vc.newView);
    if (!byView) this.viewChanges.set(vc.newView, (byView = new Map()));
    if (!byView.has(vc.from)) byView.set(vc.from, vc);
  }

  private onViewChange(message: Message): void {
    if (message.type !== MSG.viewChange) return;
    const newView = (message as { newView?: unknown }).newView;
    if (typeof newView === 'number' && newView <= this.view) {
      // The sender has not seen the NEW-VIEW that got us here: hand it the signed original.
      if (this.newViewMsg) this.env.send(message.from, this.newViewMsg);
      return;
    }
    if (typeof newView !== 'number' || newView > this.view + MAX_VIEW_AHEAD) return;
    // Validated before it is stored: an invalid one is dropped and cannot shadow a valid one.
    const vc = validViewChange(this.ctx, message);
    if (!vc) return;
    this.storeViewChange(vc);
    this.maybeJoinViewChange();
    this.maybeSendNewView(vc.newView);
    this.armViewChangeTimer();
  }

  /** f+1 replicas asking for higher views include a correct one: join, at the smallest view. */
  private maybeJoinViewChange(): void {
    const floor = this.status === 'view-change' ? this.pendingView : this.view;
    const lowestBySender = new Map<NodeId, number>();
    for (const [view, byView] of this.viewChanges) {
      if (view <= floor) continue;
      for (const from of byView.keys()) {
        if (from !== this.id) lowestBySender.set(from, Math.min(lowestBySender.get(from) ?? view, view));
      }
    }
    if (lowestBySender.size < this.f + 1) return;
    this.startViewChange(Math.min(...lowestBySender.values()));
  }

  private maybeSendNewView(view: number): void {
    if (primaryOf(view, this.n) !== this.id || this.status !== 'view-change' || this.pendingView !== view) return;
    const byView = this.viewChanges.get(view);
    if (!byView || byView.size < 2 * this.f + 1 || !byView.has(this.id)) return;
    const chosen = [...byView.values()].sort((a, b) => a.from - b.from).slice(0, 2 * this.f + 1);
    const own = byView.get(this.id);
    if (own && !chosen.includes(own)) chosen[chosen.length - 1] = own;
    const plan = computeNewViewPlan(chosen, this.ctx);
    const prePrepares = plan.entries.map((e) =>
      this.sign<PrePrepareMsg>({ type: MSG.prePrepare, from: this.id, view, seq: e.seq, digest: e.digest, batch: e.batch }),
    );
    const nv = this.sign<NewViewMsg>({ type: MSG.newView, from: this.id, newView: view, viewChanges: chosen, prePrepares });
    this.env.broadcast(nv);
    this.enterView(nv, plan);
  }

  private onNewView(message: Message): void {
    const nv = parseNewView(message);
    if (!nv || nv.newView <= this.view) return;
    const plan = verifyNewView(this.ctx, nv);
    if (plan) this.enterView(nv, plan);
  }

  private enterView(nv: NewViewMsg, plan: NewViewPlan): void {
    this.view = nv.newView;
    this.pendingView = nv.newView;
    this.status = 'normal';
    this.newViewMsg = nv;
    this.ownViewChange = null;
    this.cancelProgressTimer();
    for (const v of this.viewChanges.keys()) if (v <= this.view) this.viewChanges.delete(v);
    for (const byView of this.slots.values()) for (const v of byView.keys()) if (v < this.view) byView.delete(v);
    this.assigned.clear();
    if (this.knownMaxView < this.view) this.knownMaxView = this.view;
    this.knownMaxSeq = Math.max(plan.maxS, this.lastExecuted);
    this.trace({ phase: 'new_view', view: this.view, seq: plan.maxS, batchSize: plan.entries.length });

    const certified = this.ownCheckpoints.get(plan.minS);
    if (plan.minS > this.lowWater && certified && certified.digest === checkpointProofDigest(this.ctx, plan.minS, plan.checkpointProof)) {
      this.makeStable(plan.minS, plan.checkpointProof);
    }
    if (this.isPrimary()) this.nextSeq = Math.max(plan.maxS, this.lowWater) + 1;
    for (const pp of nv.prePrepares) if (pp.seq > this.lowWater) this.acceptPrePrepare(pp);

    if (this.isPrimary()) {
      this.tryPropose();
    } else {
      const primary = primaryOf(this.view, this.n);
      for (const request of this.pending.values()) this.env.send(primary, this.sign({ type: MSG.request, from: this.id, request }));
      this.armRequestTimer();
    }
    this.armRetransmit();
  }

  // ---- retransmission -----------------------------------------------------------------------

  private needsRetransmit(): boolean {
    if (this.status === 'view-change' || this.knownMaxView > this.view || this.knownMaxSeq > this.lastExecuted) return true;
    for (const seq of this.ownCheckpoints.keys()) if (seq > this.lowWater) return true;
    return false;
  }

  private armRetransmit(): void {
    if (this.retransmitTimer || !this.needsRetransmit()) return;
    const token = ++this.timerToken;
    this.retransmitTimer = { handle: this.env.setTimer(Math.max(1, Math.floor(this.options.timeoutUs / 2)), TIMER_RETRANSMIT, { token }), token };
  }

  /** Caught up: drop the pending retransmission (it would fire with nothing to do), so an idle
   * replica costs no timer events; otherwise make sure one is armed. */
  private refreshRetransmit(): void {
    if (this.retransmitTimer && !this.needsRetransmit()) {
      this.env.cancelTimer(this.retransmitTimer.handle);
      this.retransmitTimer = null;
      return;
    }
    this.armRetransmit();
  }

  private resend(message: Message): void {
    this.env.broadcast(message);
    this.unreportedRetransmissions++;
  }

  private onRetransmit(): void {
    if (this.status === 'view-change') {
      if (this.ownViewChange) this.resend(this.ownViewChange);
    } else {
      const last = Math.min(this.knownMaxSeq, this.lastExecuted + RETRANSMIT_SLOTS);
      for (let seq = this.lastExecuted + 1; seq <= last; seq++) {
        const entry = this.slots.get(seq)?.get(this.view);
        if (!entry) continue;
        if (entry.prePrepare && !entry.committed && entry.prePrepare.from === this.id) this.resend(entry.prePrepare);
        if (entry.sentPrepare && !entry.committed) this.resend(entry.sentPrepare);
        if (entry.sentCommit) this.resend(entry.sentCommit);
      }
    }
    const stuck = this.knownMaxSeq > this.lastExecuted && !this.decided.has(this.lastExecuted + 1);
    let unstable = false;
    for (const [seq, own] of this.ownCheckpoints) {
      if (seq <= this.lowWater) continue;
      unstable = true;
      this.resend(this.sign<CheckpointMsg>({ type: MSG.checkpoint, from: this.id, seq, stateDigest: own.digest }));
    }
    if (this.knownMaxView > this.view || stuck || unstable) this.sendFetch();
    this.armRetransmit();
  }
}

/** Votes in the map for this digest, without building an array on every vote. */
function countMatching(votes: ReadonlyMap<NodeId, { readonly digest: string }>, digest: string): number {
  let count = 0;
  for (const vote of votes.values()) if (vote.digest === digest) count++;
  return count;
}

function matching<T extends { readonly digest: string }>(votes: ReadonlyMap<NodeId, T>, digest: string): T[] {
  const out: T[] = [];
  for (const vote of votes.values()) if (vote.digest === digest) out.push(vote);
  return out;
}
