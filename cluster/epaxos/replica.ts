/**
 * One EPaxos replica (Moraru, Andersen, Kaminsky, SOSP'13): command leader for the requests its
 * clients send it, acceptor for everyone else's instances, recoverer of instances that stall.
 *
 * Every field is durable (the harness keeps the object across a crash); only timers are lost, and
 * `start()` re-arms the single tick that drives retransmission, recovery and anti-entropy: every
 * quarter timeout while the replica has work, every five timeouts (a SYNC to one peer) while it
 * is idle. Time and randomness come only from the env, so a seed reproduces a run.
 *
 * Memory is flat in run length: instances every replica has executed are garbage-collected per
 * instance space (gc-watermark.ts), leaving a watermark `collectedUpTo`; exactly-once keeps a
 * bounded window per client (executed-requests.ts); the per-request maps of this replica's own
 * proposals go when their instance executes. A replica that lost its state (an amnesiac restart,
 * outside the fault model) can no longer rebuild from its peers' logs, so it is sent a snapshot
 * (state transfer, onSnapshot).
 */
import {
  hasMutation,
  type ClientRequest,
  type Message,
  type NodeId,
  type OperationResult,
  type ProtocolOptions,
  type Replica,
  type ReplicaEnv,
  type ReplicaProgress,
  type RequestOrigin,
  type TimerHandle,
} from '../protocol.ts';
import { ConflictIndex } from './conflicts.ts';
import { ExecutedRequests } from './executed-requests.ts';
import { GcWatermark } from './gc-watermark.ts';
import { ConfigError, invariant } from '../../core/errors.ts';
import { planExecution, type ExecutionGraph } from './executor.ts';
import type {
  AcceptMessage,
  EpaxosMessage,
  AcceptReplyMessage,
  CommitMessage,
  PreAcceptMessage,
  PreAcceptReplyMessage,
  PrepareMessage,
  PrepareReplyMessage,
  SnapshotMessage,
  SyncMessage,
} from './messages.ts';
import { isCommand, parseMessage } from './messages.ts';
import { fastQuorumSize, nextBallot, slowQuorumSize } from './quorums.ts';
import { decideRecovery, type RecoveryReply } from './recovery.ts';
import type { Phase } from '../../core/trace-schema.ts';
import type { Attributes, InstanceId, InstanceRecord } from './types.ts';
import { DEFAULT_BALLOT, NO_BALLOT, depsCount, requestKey, sameAttributes, unionAttributes } from './types.ts';

/** Ticks per timeout: the granularity of retransmission and recovery checks. */
const TICKS_PER_TIMEOUT = 4;
/** Recoveries one replica starts per tick, so a long partition does not end in a storm. */
const RECOVERIES_PER_TICK = 32;
/** Commits pushed to one lagging peer per SYNC. */
const COMMITS_PER_SYNC = 128;
const MAX_BACKOFF = 8;
/** An idle replica (no drive, no uncommitted instance, nothing waiting to execute) has only
 * anti-entropy to do: it ticks (and sends SYNC) once per this many ticks, not every tick. */
const IDLE_TICKS = 5 * TICKS_PER_TIMEOUT;

/** Bounds of one replica's memory that are not protocol options. */
export interface EpaxosLimits {
  /**
   * Executed instances held per space above the GC watermark, for a replica that stopped
   * reporting (crashed, partitioned): past it the oldest are dropped here anyway, and that replica,
   * once back, catches up by snapshot instead of from the log. At the baseline load (about 430
   * instances a second per space) the default is about 40 s of absence.
   */
  readonly heldExecutedPerSpaceMax: number;
}

export const DEFAULT_EPAXOS_LIMITS: EpaxosLimits = { heldExecutedPerSpaceMax: 16_384 };

/** A proposal this replica is running for one instance, as command leader or recoverer. */
interface Drive {
  readonly id: InstanceId;
  phase: 'preaccept' | 'accept' | 'prepare';
  readonly ballot: number;
  /** Recovery never takes the fast path (it cannot know the fast quorum's original proposal). */
  readonly recovery: boolean;
  /** Pre-accept: the proposal; accept: the value being accepted. */
  attrs: Attributes;
  readonly preAcceptReplies: Map<NodeId, { attrs: Attributes; changed: boolean }>;
  readonly acceptOks: Set<NodeId>;
  readonly prepareReplies: Map<NodeId, RecoveryReply>;
  lastSentUs: number;
  attempts: number;
  /** When the current phase's first message went out (this node's clock): where its quorum's wait starts. */
  phaseStartedUs: number;
}

export class EpaxosReplica implements Replica {
  private readonly n: number;
  private readonly f: number;
  private readonly id: NodeId;
  private readonly tickUs: number;
  private readonly spaces: Map<number, InstanceRecord>[];
  private readonly conflicts: ConflictIndex;
  private nextInstance = 0;
  /** Highest instance number heard of, per space. */
  private readonly known: number[];
  private readonly committedPrefix: number[];
  private readonly executedPrefix: number[];
  /** Known instances not yet committed, by instance key. */
  private readonly uncommitted = new Map<number, InstanceRecord>();
  /** Committed, not executed; with the instance each one was last found waiting for. */
  private readonly pendingExecution = new Map<number, { rec: InstanceRecord; blockedOn: InstanceId | null }>();
  /** Pending executions by the uncommitted instance they wait for: only its commit can unblock
   * them, so a commit re-plans just these instead of scanning every pending execution. */
  private readonly waitingOn = new Map<number, number[]>();
  /** Pending executions to (re)plan: newly committed ones and those whose blocker committed. */
  private readonly toPlan: number[] = [];
  private readonly drives = new Map<number, Drive>();
  /** Exactly-once: which client requests executed here, and the reply cache, per client. */
  private readonly executedRequests = new ExecutedRequests();
  /** Requests clients sent to this replica and that it has not answered yet. */
  private readonly awaitingReply = new Map<string, number>();
  /** This replica's own instance for each client request it proposed, until that instance executes. */
  private readonly proposedFor = new Map<string, InstanceId>();
  /** Behind each of this replica's own instances not yet executed: the request, and when it
   * arrived (latency). */
  private readonly ownRequests = new Map<number, { readonly rk: string; readonly arrivalUs: number }>();
  /** Per space, every replica has executed 0..collectedUpTo[q] (the GC watermark: a fact about
   * all replicas, so it may be relayed). */
  private readonly collectedUpTo: number[];
  /** Per space, no record is held for 0..droppedUpTo[q] (≥ collectedUpTo): collected, or executed
   * here through an installed snapshot's state. Only ours to act on, never relayed. */
  private readonly droppedUpTo: number[];
  private readonly gcWatermark: GcWatermark;
  /** Something collectGarbage reads rose (a report, a relayed watermark, our executed prefix):
   * it runs on most messages, so it does nothing until then. */
  private gcDue = false;
  /** When this replica last sent each peer a snapshot (state transfer is rate-limited per peer). */
  private readonly snapshotSentUs = new Map<NodeId, number>();
  private readonly executionGraph: ExecutionGraph;
  private tickGeneration = 0;
  private ticks = 0;
  /** The armed tick: fast while there is work, slow (idle) otherwise; null after a crash. */
  private tickTimer: { readonly handle: TimerHandle; readonly atUs: number; readonly idle: boolean } | null = null;
  private lastTickUs = 0;
  private idleSyncCursor = 0;

  constructor(
    private readonly env: ReplicaEnv,
    private readonly options: ProtocolOptions,
    private readonly limits: EpaxosLimits = DEFAULT_EPAXOS_LIMITS,
  ) {
    if (!Number.isInteger(limits.heldExecutedPerSpaceMax) || limits.heldExecutedPerSpaceMax < 0) {
      throw new ConfigError([{ path: 'heldExecutedPerSpaceMax', message: `must be a whole number >= 0, got ${limits.heldExecutedPerSpaceMax}` }], 'EPaxos replica limits');
    }
    this.n = env.replicas.length;
    this.f = env.f;
    this.id = env.id;
    this.tickUs = Math.max(1, Math.floor(options.timeoutUs / TICKS_PER_TIMEOUT));
    this.spaces = Array.from({ length: this.n }, () => new Map<number, InstanceRecord>());
    this.conflicts = new ConflictIndex(this.n);
    this.known = new Array<number>(this.n).fill(-1);
    this.committedPrefix = new Array<number>(this.n).fill(-1);
    this.executedPrefix = new Array<number>(this.n).fill(-1);
    this.collectedUpTo = new Array<number>(this.n).fill(-1);
    this.droppedUpTo = new Array<number>(this.n).fill(-1);
    this.gcWatermark = new GcWatermark(this.n, this.id, this.executedPrefix);
    this.executionGraph = {
      n: this.n,
      record: (id) => this.record(id),
      executedUpTo: (q) => this.executedPrefix[q] ?? -1,
      ignoreUncommittedDeps: hasMutation(options, 'exec-ignore-deps'),
    };
  }

  // ---- Replica interface ------------------------------------------------------------------

  start(): void {
    this.tickGeneration++;
    this.tickTimer = null;
    this.lastTickUs = this.env.nowUs();
    // A random phase, so replicas that booted together do not all suspect the same instance at once.
    const idle = !this.busy();
    this.armTick((idle ? this.tickUs * IDLE_TICKS : this.tickUs) + this.env.rng.int(this.tickUs), idle);
  }

  onTimer(name: string, data: unknown): void {
    if (name !== 'tick') return;
    const generation = (data as { generation?: unknown } | undefined)?.generation;
    if (generation !== this.tickGeneration || this.tickTimer === null) return;
    const idle = this.tickTimer.idle;
    this.tickTimer = null;
    this.tick(idle);
    this.scheduleTick();
  }

  onClientRequest(request: ClientRequest): void {
    this.handleClientRequest(request);
    this.scheduleTick();
  }

  /** O(replicas + drives + requests waiting here). logSize counts the instance records held, so
   * after garbage collection it is the window not yet executed everywhere, not the run so far. */
  progressReport(): ReplicaProgress {
    let recovering = false;
    for (const drive of this.drives.values()) {
      if (drive.recovery) {
        recovering = true;
        break;
      }
    }
    let oldest: number | null = null;
    for (const atUs of this.awaitingReply.values()) if (oldest === null || atUs < oldest) oldest = atUs;
    let committed = 0;
    let executed = 0;
    let logSize = 0;
    for (let q = 0; q < this.n; q++) {
      committed += this.committedPrefix[q]! + 1;
      executed += this.executedPrefix[q]! + 1;
      logSize += this.spaces[q]!.size;
    }
    // No views: every replica leads its own instances (leader null).
    return { view: 0, leader: null, viewChanging: recovering, backlog: this.uncommitted.size + this.pendingExecution.size, oldestRequestUs: oldest, committed, executed, logSize };
  }

  private handleClientRequest(request: ClientRequest): void {
    if (!isCommand(request) || request === null) return;
    const rk = requestKey(request.clientId, request.requestId);
    if (this.executedRequests.executed(request.clientId, request.requestId)) {
      // Only the client's latest request can still be waited for; an older one is a stale resend.
      const done = this.executedRequests.resultFor(request.clientId, request.requestId);
      if (done !== undefined) this.reply(request, done, 0, null);
      return;
    }
    if (!this.awaitingReply.has(rk)) this.awaitingReply.set(rk, this.env.nowUs());
    const mine = this.proposedFor.get(rk);
    // A retransmission while our own instance still carries the request: the drive resends.
    if (mine !== undefined) {
      const rec = this.record(mine);
      const lostToNoop = rec !== undefined && (rec.status === 'committed' || rec.status === 'executed') && rec.attrs?.cmd === null;
      if (!lostToNoop) return;
    }
    this.propose(request, rk);
  }

  onMessage(message: Message): void {
    if (message.from === this.id) return this.env.telemetry.rejected('malformed');
    if (!this.env.auth.verify(message)) return this.env.telemetry.rejected('bad_mac');
    const m = parseMessage(message, this.n);
    if (m === null) return this.env.telemetry.rejected('malformed');
    this.handleMessage(m);
    this.scheduleTick();
  }

  private handleMessage(m: EpaxosMessage): void {
    switch (m.type) {
      case 'PRE_ACCEPT':
        return this.onPreAccept(m);
      case 'PRE_ACCEPT_REPLY':
        return this.onPreAcceptReply(m);
      case 'ACCEPT':
        return this.onAccept(m);
      case 'ACCEPT_REPLY':
        return this.onAcceptReply(m);
      case 'COMMIT':
        return this.onCommit(m);
      case 'PREPARE':
        return this.onPrepare(m);
      case 'PREPARE_REPLY':
        return this.onPrepareReply(m);
      case 'SYNC':
        return this.onSync(m);
      case 'SNAPSHOT':
        return this.onSnapshot(m);
    }
  }

  // ---- Command leader: phase 1 -------------------------------------------------------------

  private propose(request: ClientRequest, rk: string): void {
    const id: InstanceId = { replica: this.id, instance: this.nextInstance++ };
    const rec = this.ensureRecord(id);
    const computed = this.conflicts.attributesFor(id, request, (d) => this.record(d));
    const attrs: Attributes = { cmd: request, seq: computed.seq, deps: computed.deps };
    this.vote(rec, attrs, 'preaccepted', DEFAULT_BALLOT);
    rec.preAcceptedEq = true;
    this.proposedFor.set(rk, id);
    const now = this.env.nowUs();
    this.ownRequests.set(this.slotKey(id), { rk, arrivalUs: this.awaitingReply.get(rk) ?? now });
    this.env.trace({ phase: 'request', view: DEFAULT_BALLOT, seq: id.instance, leader: this.id, batchSize: 1, depsCount: depsCount(attrs.deps), latencyUs: 0 });
    const drive = this.newDrive(id, 'preaccept', DEFAULT_BALLOT, false, attrs);
    rec.votesOpenedUs = drive.phaseStartedUs;
    this.drives.set(this.slotKey(id), drive);
    this.sendPreAccept(drive, false);
  }

  private sendPreAccept(drive: Drive, retransmit: boolean): void {
    const msg: PreAcceptMessage = { type: 'PRE_ACCEPT', from: this.id, ballot: drive.ballot, replica: drive.id.replica, instance: drive.id.instance, cmd: drive.attrs.cmd, seq: drive.attrs.seq, deps: [...drive.attrs.deps] };
    const sent = this.sendToOthers(msg, drive.preAcceptReplies);
    drive.lastSentUs = this.env.nowUs();
    this.traceInstance('pre_accept', drive.id, drive.ballot, drive.attrs, undefined, retransmit ? sent : 0);
  }

  private onPreAccept(m: PreAcceptMessage): void {
    if (!this.ownsBallot(m.from, m.ballot, m.replica)) return this.env.telemetry.rejected('wrong_view');
    if (this.collected(m)) return;
    const rec = this.ensureRecord(m);
    this.progress(rec);
    const proposal: Attributes = { cmd: m.cmd, seq: m.seq, deps: m.deps };
    if (this.isCommitted(rec)) return this.replyPreAccept(m, rec, true, proposal);
    if (m.ballot < rec.promised) {
      this.env.telemetry.rejected('wrong_view');
      return this.replyPreAccept(m, rec, false, proposal);
    }
    const duplicate = rec.vbal === m.ballot && rec.attrs !== null && rec.status !== 'none';
    if (!duplicate) {
      const local = this.conflicts.attributesFor(m, m.cmd, (d) => this.record(d));
      const merged = unionAttributes(proposal, { cmd: m.cmd, seq: local.seq, deps: local.deps });
      this.vote(rec, merged, 'preaccepted', m.ballot);
      rec.preAcceptedEq = m.ballot === DEFAULT_BALLOT && sameAttributes(merged, proposal);
    }
    this.replyPreAccept(m, rec, true, proposal);
  }

  private replyPreAccept(m: PreAcceptMessage, rec: InstanceRecord, ok: boolean, proposal: Attributes): void {
    const attrs = rec.attrs ?? proposal;
    const reply: PreAcceptReplyMessage = {
      type: 'PRE_ACCEPT_REPLY',
      from: this.id,
      ballot: m.ballot,
      replica: m.replica,
      instance: m.instance,
      ok,
      promised: rec.promised,
      committed: this.isCommitted(rec),
      cmd: attrs.cmd,
      seq: attrs.seq,
      deps: [...attrs.deps],
      changed: !sameAttributes(attrs, proposal),
      executedPrefix: [...this.executedPrefix],
    };
    this.env.send(m.from, this.env.auth.sign(reply));
    this.traceInstance('pre_accept_reply', m, m.ballot, attrs);
  }

  private onPreAcceptReply(m: PreAcceptReplyMessage): void {
    this.timeVote(m);
    if (this.gcWatermark.report(m.from, m.executedPrefix)) this.gcDue = true;
    this.collectGarbage();
    const attrs: Attributes = { cmd: m.cmd, seq: m.seq, deps: m.deps };
    if (m.committed) return this.learnCommit(m, attrs, m.ballot, true);
    const drive = this.drives.get(this.slotKey(m));
    // A reply after the quorum decided (drive gone or moved on) is the normal tail, not a rejection.
    if (drive === undefined || drive.phase !== 'preaccept') return;
    if (drive.ballot !== m.ballot) return this.env.telemetry.rejected('wrong_view');
    if (!m.ok) return this.abandon(drive, m.promised);
    this.progress(this.ensureRecord(m));
    if (drive.preAcceptReplies.has(m.from)) return this.env.telemetry.rejected('duplicate');
    drive.preAcceptReplies.set(m.from, { attrs, changed: m.changed });
    const replies = [...drive.preAcceptReplies.values()];
    // Decide on the first quorum of replies: fast quorum for a leader, classic quorum for recovery.
    // Mutation 'majority-fast-quorum' (deliberate bug, tests only): fast path on F+1 replies.
    const fastQuorum = hasMutation(this.options, 'majority-fast-quorum') ? slowQuorumSize(this.f) : fastQuorumSize(this.f);
    const needed = (drive.recovery ? slowQuorumSize(this.f) : fastQuorum) - 1;
    if (replies.length < needed) return;
    this.env.telemetry.quorumCompleted(this.env.nowUs() - drive.phaseStartedUs, m.from);
    if (!drive.recovery && replies.every((r) => !r.changed)) return this.decide(drive.id, drive.attrs, drive.ballot);
    let union = drive.attrs;
    for (const r of replies) union = unionAttributes(union, r.attrs);
    // Mutation 'no-deps-union' (deliberate bug, tests only): accept the leader's own deps.
    if (hasMutation(this.options, 'no-deps-union')) union = { ...union, deps: drive.attrs.deps };
    this.startAccept(drive, union);
  }

  // ---- Phase 2: Paxos accept ---------------------------------------------------------------

  private startAccept(drive: Drive, attrs: Attributes): void {
    const rec = this.ensureRecord(drive.id);
    if (rec.promised > drive.ballot) return this.abandon(drive, rec.promised);
    drive.phase = 'accept';
    drive.attrs = attrs;
    drive.attempts = 0;
    drive.phaseStartedUs = this.env.nowUs();
    rec.votesOpenedUs = drive.phaseStartedUs;
    drive.acceptOks.clear();
    drive.acceptOks.add(this.id);
    this.vote(rec, attrs, 'accepted', drive.ballot);
    this.sendAccept(drive, false);
  }

  private sendAccept(drive: Drive, retransmit: boolean): void {
    const msg: AcceptMessage = { type: 'ACCEPT', from: this.id, ballot: drive.ballot, replica: drive.id.replica, instance: drive.id.instance, cmd: drive.attrs.cmd, seq: drive.attrs.seq, deps: [...drive.attrs.deps] };
    const sent = this.sendToOthers(msg, drive.acceptOks);
    drive.lastSentUs = this.env.nowUs();
    this.traceInstance('accept', drive.id, drive.ballot, drive.attrs, undefined, retransmit ? sent : 0);
  }

  /** Signs once and sends to every other replica that has not answered yet; returns how many. */
  private sendToOthers(msg: PreAcceptMessage | AcceptMessage, answered: { has(node: NodeId): boolean }): number {
    const signed = this.env.auth.sign(msg);
    let sent = 0;
    for (const to of this.env.replicas) {
      if (to === this.id || answered.has(to)) continue;
      this.env.send(to, signed);
      sent++;
    }
    return sent;
  }

  private onAccept(m: AcceptMessage): void {
    if (!this.ownsBallot(m.from, m.ballot, m.replica)) return this.env.telemetry.rejected('wrong_view');
    if (this.collected(m)) return;
    const rec = this.ensureRecord(m);
    this.progress(rec);
    const attrs: Attributes = { cmd: m.cmd, seq: m.seq, deps: m.deps };
    // Never vote for a committed instance: a stale proposer (say a leader back from a partition)
    // would count the vote for its own value. Tell it the committed value instead.
    if (this.isCommitted(rec) && rec.attrs !== null) {
      this.env.send(m.from, this.env.auth.sign(this.commitMessage(rec.id, rec.attrs, Math.max(0, rec.vbal))));
      return;
    }
    const ok = m.ballot >= rec.promised;
    if (ok) this.vote(rec, attrs, 'accepted', m.ballot);
    else this.env.telemetry.rejected('wrong_view');
    const reply: AcceptReplyMessage = { type: 'ACCEPT_REPLY', from: this.id, ballot: m.ballot, replica: m.replica, instance: m.instance, ok, promised: rec.promised };
    this.env.send(m.from, this.env.auth.sign(reply));
    this.traceInstance('accept_reply', m, m.ballot, attrs);
  }

  /** Every vote, late ones included, timed from when this leader asked: a slow peer shows here
   * even when quorums never wait for it. */
  private timeVote(m: { from: NodeId; replica: NodeId; instance: number }): void {
    const rec = this.record(m);
    if (rec !== undefined && rec.votesOpenedUs > 0) this.env.telemetry.voteReceived(m.from, this.env.nowUs() - rec.votesOpenedUs);
  }

  private onAcceptReply(m: AcceptReplyMessage): void {
    this.timeVote(m);
    const drive = this.drives.get(this.slotKey(m));
    if (drive === undefined || drive.phase !== 'accept') return;
    if (drive.ballot !== m.ballot) return this.env.telemetry.rejected('wrong_view');
    if (!m.ok) return this.abandon(drive, m.promised);
    if (drive.acceptOks.has(m.from)) return this.env.telemetry.rejected('duplicate');
    drive.acceptOks.add(m.from);
    if (drive.acceptOks.size >= slowQuorumSize(this.f)) {
      this.env.telemetry.quorumCompleted(this.env.nowUs() - drive.phaseStartedUs, m.from);
      this.decide(drive.id, drive.attrs, drive.ballot);
    }
  }

  // ---- Commit ------------------------------------------------------------------------------

  /** This replica decided the instance: commit locally and tell everyone. */
  private decide(id: InstanceId, attrs: Attributes, ballot: number): void {
    this.commitLocally(id, attrs, ballot);
    this.broadcastCommit(id, attrs, ballot);
  }

  private broadcastCommit(id: InstanceId, attrs: Attributes, ballot: number): void {
    this.env.broadcast(this.env.auth.sign(this.commitMessage(id, attrs, ballot)));
  }

  private commitMessage(id: InstanceId, attrs: Attributes, ballot: number): CommitMessage {
    return { type: 'COMMIT', from: this.id, ballot, replica: id.replica, instance: id.instance, cmd: attrs.cmd, seq: attrs.seq, deps: [...attrs.deps], executedEverywhere: [...this.collectedUpTo] };
  }

  private onCommit(m: CommitMessage): void {
    this.learnCommit(m, { cmd: m.cmd, seq: m.seq, deps: m.deps }, m.ballot, false);
    if (this.gcWatermark.relay(m.executedEverywhere)) this.gcDue = true;
    this.collectGarbage();
  }

  /** A peer reports the instance committed; a recoverer also relays it, since others may not know. */
  private learnCommit(id: InstanceId, attrs: Attributes, ballot: number, relay: boolean): void {
    if (this.collected(id)) return; // executed everywhere: nothing to learn, no one to tell
    const rec = this.ensureRecord(id);
    if (this.isCommitted(rec)) return;
    this.commitLocally(id, attrs, ballot);
    if (relay) this.broadcastCommit(id, attrs, ballot);
  }

  private commitLocally(id: InstanceId, attrs: Attributes, ballot: number): void {
    const rec = this.ensureRecord(id);
    if (this.isCommitted(rec)) return;
    const key = this.slotKey(id);
    rec.attrs = attrs;
    rec.status = 'committed';
    rec.promised = Math.max(rec.promised, ballot);
    rec.vbal = Math.max(rec.vbal, ballot);
    this.conflicts.record(id, attrs.cmd, attrs.seq);
    this.uncommitted.delete(key);
    this.drives.delete(key);
    this.pendingExecution.set(key, { rec, blockedOn: null });
    this.toPlan.push(key);
    const waiting = this.waitingOn.get(key);
    if (waiting !== undefined) {
      this.waitingOn.delete(key);
      for (const w of waiting) this.toPlan.push(w);
    }
    const space = this.spaces[id.replica]!;
    while (this.isCommitted(space.get(this.committedPrefix[id.replica]! + 1))) this.committedPrefix[id.replica]!++;
    const arrival = this.ownRequests.get(key)?.arrivalUs;
    this.traceInstance('commit', id, ballot, attrs, arrival === undefined ? null : this.env.nowUs() - arrival);
    this.executeReady();
  }

  // ---- Execution ---------------------------------------------------------------------------

  /** Plans every pending execution that a commit may have unblocked, in the order they became
   * plannable (deterministic); an entry still blocked waits on its new blocker. */
  private executeReady(): void {
    const graph = this.executionGraph;
    for (let i = 0; i < this.toPlan.length; i++) {
      const key = this.toPlan[i]!;
      const pending = this.pendingExecution.get(key);
      if (pending === undefined) continue;
      if (pending.rec.status === 'executed') {
        this.pendingExecution.delete(key);
        continue;
      }
      const plan = planExecution(pending.rec, graph);
      for (const component of plan.components) for (const rec of component) this.executeOne(rec);
      pending.blockedOn = plan.blockedOn;
      if (plan.blockedOn === null) continue;
      const blockerKey = this.slotKey(plan.blockedOn);
      const waiting = this.waitingOn.get(blockerKey);
      if (waiting === undefined) this.waitingOn.set(blockerKey, [key]);
      else waiting.push(key);
      this.noteKnown(plan.blockedOn.replica, plan.blockedOn.instance);
    }
    this.toPlan.length = 0;
  }

  private executeOne(rec: InstanceRecord): void {
    if (rec.status === 'executed' || rec.attrs === null) return;
    const cmd = rec.attrs.cmd;
    const key = this.slotKey(rec.id);
    rec.status = 'executed';
    this.pendingExecution.delete(key);
    const space = this.spaces[rec.id.replica]!;
    while (space.get(this.executedPrefix[rec.id.replica]! + 1)?.status === 'executed') {
      this.executedPrefix[rec.id.replica]!++;
      this.gcDue = true;
    }
    let result: OperationResult | undefined;
    if (cmd !== null) {
      // A client that resent to another replica may have its request in two instances: run it once.
      if (this.executedRequests.executed(cmd.clientId, cmd.requestId)) {
        result = this.executedRequests.resultFor(cmd.clientId, cmd.requestId);
      } else {
        result = this.env.stateMachine.execute(cmd.op, cmd);
        this.executedRequests.record(cmd.clientId, cmd.requestId, result);
      }
    }
    const own = this.ownRequests.get(key);
    if (own !== undefined) {
      this.ownRequests.delete(key);
      // Our proposal for the request is over (it ran, or lost its slot to a no-op, in which case a
      // retransmission proposes it afresh, as `lostToNoop` did while the record was held).
      const mine = this.proposedFor.get(own.rk);
      if (mine !== undefined && mine.replica === rec.id.replica && mine.instance === rec.id.instance) this.proposedFor.delete(own.rk);
    }
    this.traceInstance('execute', rec.id, rec.vbal, rec.attrs, own === undefined ? null : this.env.nowUs() - own.arrivalUs);
    if (cmd !== null) {
      const rk = requestKey(cmd.clientId, cmd.requestId);
      if (this.awaitingReply.has(rk)) {
        // No result: an older duplicate of a request the client has moved past; no one waits for it.
        if (result !== undefined) this.reply(cmd, result, Math.max(0, rec.vbal), rec.id);
        else this.awaitingReply.delete(rk);
      }
    }
  }

  private reply(request: RequestOrigin, result: OperationResult, ballot: number, instance: InstanceId | null): void {
    const rk = requestKey(request.clientId, request.requestId);
    const arrival = this.awaitingReply.get(rk);
    this.awaitingReply.delete(rk);
    this.env.replyToClient({ clientId: request.clientId, requestId: request.requestId, result, replica: this.id, view: ballot });
    this.env.trace({
      phase: 'reply',
      view: ballot,
      seq: instance?.instance ?? 0,
      leader: instance?.replica ?? this.id,
      batchSize: 1,
      latencyUs: arrival === undefined ? null : this.env.nowUs() - arrival,
    });
  }

  // ---- Explicit prepare (recovery) -----------------------------------------------------------

  private startRecovery(rec: InstanceRecord): void {
    const key = this.slotKey(rec.id);
    const ballot = nextBallot(rec.promised, this.id, this.n);
    rec.promised = ballot;
    const drive = this.newDrive(rec.id, 'prepare', ballot, true, rec.attrs ?? { cmd: null, seq: 0, deps: [] });
    drive.prepareReplies.set(this.id, this.recoveryReplyOf(rec, this.id));
    this.drives.set(key, drive);
    this.progress(rec);
    this.sendPrepare(drive, false);
  }

  private sendPrepare(drive: Drive, retransmit: boolean): void {
    const msg: PrepareMessage = { type: 'PREPARE', from: this.id, ballot: drive.ballot, replica: drive.id.replica, instance: drive.id.instance };
    const signed = this.env.auth.sign(msg);
    let sent = 0;
    for (const to of this.env.replicas) {
      if (to === this.id || drive.prepareReplies.has(to)) continue;
      this.env.send(to, signed);
      sent++;
    }
    drive.lastSentUs = this.env.nowUs();
    this.env.trace({ phase: 'prepare', view: drive.ballot, seq: drive.id.instance, leader: drive.id.replica, batchSize: 1, retransmissions: retransmit ? sent : 0 });
  }

  private onPrepare(m: PrepareMessage): void {
    if (!this.ownsBallot(m.from, m.ballot, m.replica)) return this.env.telemetry.rejected('wrong_view');
    if (this.collected(m)) return;
    const rec = this.ensureRecord(m);
    this.progress(rec);
    const ok = this.isCommitted(rec) || m.ballot >= rec.promised;
    if (ok) this.promise(rec, m.ballot);
    const attrs = rec.attrs;
    const reply: PrepareReplyMessage = {
      type: 'PREPARE_REPLY',
      from: this.id,
      ballot: m.ballot,
      replica: m.replica,
      instance: m.instance,
      ok,
      promised: rec.promised,
      status: rec.status,
      cmd: attrs?.cmd ?? null,
      seq: attrs?.seq ?? 0,
      deps: attrs === null ? null : [...attrs.deps],
      vbal: rec.vbal,
      eq: rec.preAcceptedEq,
    };
    this.env.send(m.from, this.env.auth.sign(reply));
    this.env.trace({ phase: 'prepare_reply', view: m.ballot, seq: m.instance, leader: m.replica, batchSize: 1, depsCount: attrs === null ? 0 : depsCount(attrs.deps) });
  }

  private onPrepareReply(m: PrepareReplyMessage): void {
    const attrs: Attributes | null = m.deps === null ? null : { cmd: m.cmd, seq: m.seq, deps: m.deps };
    if ((m.status === 'committed' || m.status === 'executed') && attrs !== null) return this.learnCommit(m, attrs, m.ballot, true);
    const drive = this.drives.get(this.slotKey(m));
    if (drive === undefined || drive.phase !== 'prepare' || drive.ballot !== m.ballot) return;
    if (!m.ok) return this.abandon(drive, m.promised);
    drive.prepareReplies.set(m.from, { from: m.from, status: m.status, attrs, vbal: m.vbal, eq: m.eq });
    const decision = decideRecovery([...drive.prepareReplies.values()], { n: this.n, f: this.f, leader: drive.id.replica });
    switch (decision.kind) {
      case 'wait':
        return;
      case 'commit':
        return this.decide(drive.id, decision.attrs, drive.ballot);
      case 'accept':
        return this.startAccept(drive, decision.attrs);
      case 'preaccept': {
        const rec = this.ensureRecord(drive.id);
        const local = this.conflicts.attributesFor(drive.id, decision.attrs.cmd, (d) => this.record(d));
        const attrs = unionAttributes(decision.attrs, { cmd: decision.attrs.cmd, seq: local.seq, deps: local.deps });
        this.vote(rec, attrs, 'preaccepted', drive.ballot);
        drive.phase = 'preaccept';
        drive.attrs = attrs;
        drive.attempts = 0;
        return this.sendPreAccept(drive, false);
      }
    }
  }

  private recoveryReplyOf(rec: InstanceRecord, from: NodeId): RecoveryReply {
    return { from, status: rec.status, attrs: rec.attrs, vbal: rec.vbal, eq: rec.preAcceptedEq };
  }

  /** A higher ballot took over: stop, and let the stuck-instance check try again later. */
  private abandon(drive: Drive, promised: number): void {
    const key = this.slotKey(drive.id);
    this.drives.delete(key);
    const rec = this.ensureRecord(drive.id);
    rec.promised = Math.max(rec.promised, promised);
    this.progress(rec);
  }

  // ---- Timers: retransmission, recovery, anti-entropy ---------------------------------------

  /** Work that needs the fast tick: retransmission, recovery, or execution waiting on a commit. */
  private busy(): boolean {
    return this.drives.size > 0 || this.uncommitted.size > 0 || this.pendingExecution.size > 0;
  }

  private armTick(afterUs: number, idle: boolean): void {
    const handle = this.env.setTimer(afterUs, 'tick', { generation: this.tickGeneration });
    this.tickTimer = { handle, atUs: this.env.nowUs() + afterUs, idle };
  }

  /** After every event: tick fast while there is work, slowly once there is none. A replica
   * that just went idle keeps the idle cadence from its last tick, so steady light load (work
   * that comes and goes between ticks) cannot postpone anti-entropy for ever. */
  private scheduleTick(): void {
    const busy = this.busy();
    const current = this.tickTimer;
    const now = this.env.nowUs();
    if (current !== null) {
      if (busy ? !current.idle || current.atUs <= now + this.tickUs : current.idle) return;
      this.env.cancelTimer(current.handle);
      this.tickTimer = null;
    }
    if (busy) this.armTick(this.tickUs, false);
    else this.armTick(Math.max(1, this.lastTickUs + this.tickUs * IDLE_TICKS - now), true);
  }

  private tick(idle: boolean): void {
    this.ticks++;
    const now = this.env.nowUs();
    this.lastTickUs = now;
    for (const drive of [...this.drives.values()]) {
      const wait = (this.options.timeoutUs / 2) * Math.min(MAX_BACKOFF, 2 ** drive.attempts);
      if (now - drive.lastSentUs < wait) continue;
      drive.attempts++;
      if (drive.phase === 'preaccept') this.sendPreAccept(drive, true);
      else if (drive.phase === 'accept') this.sendAccept(drive, true);
      else this.sendPrepare(drive, true);
    }
    let started = 0;
    for (const [key, rec] of this.uncommitted) {
      if (started >= RECOVERIES_PER_TICK) break;
      if (this.drives.has(key) || now < rec.recoverAfterUs) continue;
      this.startRecovery(rec);
      started++;
    }
    if (idle) this.sendIdleSync();
    else if (this.ticks % TICKS_PER_TIMEOUT === 0) this.broadcastSync();
    this.collectGarbage();
  }

  private syncMessage(): SyncMessage {
    const msg: SyncMessage = { type: 'SYNC', from: this.id, known: [...this.known], committedPrefix: [...this.committedPrefix], executedPrefix: [...this.executedPrefix] };
    return this.env.auth.sign(msg) as SyncMessage;
  }

  private broadcastSync(): void {
    this.env.broadcast(this.syncMessage());
  }

  /** Idle anti-entropy: one peer per idle tick, in turn. A replica that missed instances hears
   * of them from some peer within about one idle period (every peer is someone's next turn),
   * then has work and syncs with everyone at the fast cadence until it has caught up. */
  private sendIdleSync(): void {
    if (this.n < 2) return;
    this.idleSyncCursor = (this.idleSyncCursor + 1) % (this.n - 1);
    const to = (this.id + 1 + this.idleSyncCursor) % this.n;
    this.env.send(to, this.syncMessage());
  }

  private onSync(m: SyncMessage): void {
    for (let q = 0; q < this.n; q++) this.noteKnown(q, m.known[q]!);
    if (this.gcWatermark.report(m.from, m.executedPrefix)) this.gcDue = true;
    if (this.needsSnapshot(m.executedPrefix)) this.sendSnapshot(m.from);
    let budget = COMMITS_PER_SYNC;
    for (let q = 0; q < this.n && budget > 0; q++) {
      // Nothing is held below droppedUpTo; in the model the sender executed all of it already (it
      // reported so) unless this SYNC is an old one, else it needs a snapshot (needsSnapshot).
      for (let j = Math.max(m.committedPrefix[q]!, this.droppedUpTo[q]!) + 1; j <= this.known[q]! && budget > 0; j++) {
        const rec = this.record({ replica: q, instance: j });
        if (rec === undefined || !this.isCommitted(rec) || rec.attrs === null) continue;
        this.env.send(m.from, this.env.auth.sign(this.commitMessage(rec.id, rec.attrs, Math.max(0, rec.vbal))));
        budget--;
      }
    }
    this.collectGarbage();
  }

  /**
   * Drops, per space, the instance records below what every replica has executed. What stays is
   * the watermark `collectedUpTo`, and what it answers for a dropped instance:
   * - a PRE_ACCEPT, ACCEPT or PREPARE for it is ignored (`collected()`), never given a fresh
   *   placeholder: a placeholder is an uncommitted instance that recovery could fill with a
   *   no-op or another command. Ignoring is safe (it is a lost message) and costs no liveness:
   *   its sender executed the instance too, so no drive of it is waiting (commits end drives).
   * - a COMMIT (or a reply carrying one) is ignored: it is committed and executed here already.
   * - dependencies on it are satisfied: execution skips below the executed prefix, which is at
   *   least the watermark, and the conflict index keeps its seq (conflicts.ts).
   * - SYNC catch-up never needs it: every replica has committed it.
   */
  private collectGarbage(): void {
    if (!this.gcDue) return;
    this.gcDue = false;
    for (let q = 0; q < this.n; q++) {
      const floor = this.gcWatermark.floor(q);
      if (floor > this.collectedUpTo[q]!) this.collectedUpTo[q] = floor;
      // A replica that stopped reporting holds the watermark; past the bound we stop holding for
      // it (it will need a snapshot). Never above our executed prefix: we drop only what we ran.
      const drop = Math.max(floor, this.executedPrefix[q]! - this.limits.heldExecutedPerSpaceMax);
      if (drop <= this.droppedUpTo[q]!) continue;
      const space = this.spaces[q]!;
      for (let j = this.droppedUpTo[q]! + 1; j <= drop; j++) {
        const rec = space.get(j);
        invariant(rec !== undefined && rec.status === 'executed', `EPaxos GC: instance ${q}.${j} below the executed prefix is ${rec?.status ?? 'missing'} here`);
        space.delete(j);
      }
      this.droppedUpTo[q] = drop;
    }
  }

  // ---- State transfer (a replica that lost what everyone else collected) --------------------

  /** A peer's executed prefix below our watermark: it lacks instances only a snapshot can give.
   * Never in EPaxos's fault model (the watermark is below every replica's report), so this is a
   * replica that lost its state; an old SYNC overtaken by newer ones can look the same, and the
   * snapshot it brings is then ignored (onSnapshot), so sends are rate-limited per peer. */
  private needsSnapshot(peerExecuted: readonly number[]): boolean {
    for (let q = 0; q < this.n; q++) if (peerExecuted[q]! < this.droppedUpTo[q]!) return true;
    return false;
  }

  private sendSnapshot(to: NodeId): void {
    const now = this.env.nowUs();
    const last = this.snapshotSentUs.get(to);
    if (last !== undefined && now - last < this.options.timeoutUs * TICKS_PER_TIMEOUT) return;
    this.snapshotSentUs.set(to, now);
    // The state covers the executed prefix; above it, the instances executed out of order (few:
    // so a snapshot is the state machine plus a handful of instances, whatever the lag).
    const executed: SnapshotMessage['executed'][number][] = [];
    for (const space of this.spaces) {
      for (const rec of space.values()) {
        if (rec.status !== 'executed' || rec.attrs === null || rec.id.instance <= this.executedPrefix[rec.id.replica]!) continue;
        executed.push({ replica: rec.id.replica, instance: rec.id.instance, ballot: Math.max(0, rec.vbal), cmd: rec.attrs.cmd, seq: rec.attrs.seq, deps: [...rec.attrs.deps] });
      }
    }
    const msg: SnapshotMessage = {
      type: 'SNAPSHOT',
      from: this.id,
      state: this.env.stateMachine.snapshot(),
      collectedUpTo: [...this.collectedUpTo],
      droppedUpTo: [...this.droppedUpTo],
      executedPrefix: [...this.executedPrefix],
      known: [...this.known],
      executed,
      requests: this.executedRequests.export(),
    };
    this.env.send(to, this.env.auth.sign(msg));
  }

  /**
   * Installs a peer's snapshot when we need it (it collected something we have not executed) and
   * it covers everything we executed (restoring its state must not undo one of our executions;
   * a later snapshot will cover it, since what we executed is committed and the peer executes it
   * too). Then we hold what the peer held: its executed instances, its watermark, its exactly-once
   * windows, and our pending work is re-planned on top.
   */
  private onSnapshot(m: SnapshotMessage): void {
    let needed = false;
    for (let q = 0; q < this.n; q++) if (m.droppedUpTo[q]! > this.executedPrefix[q]!) needed = true;
    if (!needed) return;
    const theirs = new Set<number>();
    for (const e of m.executed) theirs.add(this.slotKey(e));
    for (let q = 0; q < this.n; q++) {
      // What we hold no record of we executed too: the snapshot's state must include it.
      if (this.droppedUpTo[q]! > m.executedPrefix[q]!) return;
      for (const [j, rec] of this.spaces[q]!) {
        if (rec.status === 'executed' && j > m.executedPrefix[q]! && !theirs.has(this.slotKey(rec.id))) return;
      }
    }
    this.env.stateMachine.restore(m.state);
    this.executedRequests.restore(m.requests);
    // Our own space: never reuse an instance number the cluster has heard of.
    this.nextInstance = Math.max(this.nextInstance, m.known[this.id]! + 1);
    for (let q = 0; q < this.n; q++) {
      // The state covers the sender's executed prefix: we hold no record below it any more.
      const base = m.executedPrefix[q]!;
      for (const j of [...this.spaces[q]!.keys()]) if (j <= base) this.forget({ replica: q, instance: j });
      if (this.collectedUpTo[q]! < m.collectedUpTo[q]!) this.collectedUpTo[q] = m.collectedUpTo[q]!;
      if (this.droppedUpTo[q]! < base) this.droppedUpTo[q] = base;
      if (this.known[q]! < base) this.known[q] = base;
      if (this.executedPrefix[q]! < base) this.executedPrefix[q] = base;
      if (this.committedPrefix[q]! < base) this.committedPrefix[q] = base;
    }
    this.gcWatermark.relay(m.collectedUpTo);
    this.gcDue = true;
    for (const e of m.executed) {
      if (this.collected(e)) continue;
      this.noteKnown(e.replica, e.instance);
      const rec = this.record(e) ?? this.placeholder({ replica: e.replica, instance: e.instance });
      const key = this.slotKey(e);
      rec.attrs = { cmd: e.cmd, seq: e.seq, deps: e.deps };
      rec.status = 'executed';
      rec.promised = Math.max(rec.promised, e.ballot);
      rec.vbal = Math.max(rec.vbal, e.ballot);
      this.conflicts.record(rec.id, e.cmd, e.seq);
      this.uncommitted.delete(key);
      this.pendingExecution.delete(key);
      this.drives.delete(key);
    }
    for (let q = 0; q < this.n; q++) {
      const space = this.spaces[q]!;
      while (space.get(this.executedPrefix[q]! + 1)?.status === 'executed') this.executedPrefix[q]!++;
      if (this.committedPrefix[q]! < this.executedPrefix[q]!) this.committedPrefix[q] = this.executedPrefix[q]!;
      while (this.isCommitted(space.get(this.committedPrefix[q]! + 1))) this.committedPrefix[q]!++;
    }
    for (const [key, own] of [...this.ownRequests]) {
      const rec = this.spaces[this.id]!.get((key - this.id) / this.n);
      if (rec !== undefined && rec.status !== 'executed') continue;
      this.ownRequests.delete(key);
      const mine = this.proposedFor.get(own.rk);
      if (mine !== undefined && this.slotKey(mine) === key) this.proposedFor.delete(own.rk);
    }
    // Requests waiting here that the snapshot says ran: answer the latest, forget older ones.
    for (const rk of [...this.awaitingReply.keys()]) {
      const [clientId, requestId] = rk.split(':').map(Number) as [number, number];
      if (!this.executedRequests.executed(clientId, requestId)) continue;
      const result = this.executedRequests.resultFor(clientId, requestId);
      if (result !== undefined) this.reply({ clientId, requestId }, result, 0, null);
      else this.awaitingReply.delete(rk);
    }
    // Everything still pending is planned again: some of what it waited for came with the snapshot.
    this.waitingOn.clear();
    this.toPlan.length = 0;
    for (const key of this.pendingExecution.keys()) this.toPlan.push(key);
    this.executeReady();
    this.collectGarbage();
  }

  /** Drops our record of an instance a snapshot covers, with whatever work it had. */
  private forget(id: InstanceId): void {
    const key = this.slotKey(id);
    this.spaces[id.replica]!.delete(id.instance);
    this.uncommitted.delete(key);
    this.pendingExecution.delete(key);
    this.drives.delete(key);
  }

  /** No record is held for the instance and none may be made: it was garbage-collected (executed
   * at every replica, see collectGarbage), or a snapshot installed here covers it (executed by
   * its sender, hence committed: a message about it is answered as a lost one would be). */
  private collected(id: InstanceId): boolean {
    return id.instance <= this.droppedUpTo[id.replica]!;
  }

  // ---- Instance bookkeeping ----------------------------------------------------------------

  /** A number per instance for this replica's maps (cheaper than instanceKey's string). */
  private slotKey(id: InstanceId): number {
    return id.instance * this.n + id.replica;
  }

  private record(id: InstanceId): InstanceRecord | undefined {
    return this.spaces[id.replica]?.get(id.instance);
  }

  private ensureRecord(id: InstanceId): InstanceRecord {
    const existing = this.record(id);
    if (existing !== undefined) return existing;
    // A placeholder below the watermark is the one thing GC must never allow (collectGarbage).
    invariant(!this.collected(id), `EPaxos: a fresh record for garbage-collected instance ${id.replica}.${id.instance}`);
    this.noteKnown(id.replica, id.instance);
    return this.record(id) ?? this.placeholder({ replica: id.replica, instance: id.instance });
  }

  private placeholder(id: InstanceId): InstanceRecord {
    const rec: InstanceRecord = {
      id,
      status: 'none',
      attrs: null,
      promised: DEFAULT_BALLOT,
      vbal: NO_BALLOT,
      preAcceptedEq: false,
      lastProgressUs: 0,
      recoverAfterUs: 0,
      votesOpenedUs: 0,
    };
    this.spaces[id.replica]?.set(id.instance, rec);
    this.uncommitted.set(this.slotKey(id), rec);
    this.progress(rec);
    return rec;
  }

  /** Instances q.0..q.upTo exist (vector deps depend on all of them): track every one of them. */
  private noteKnown(q: number, upTo: number): void {
    const space = this.spaces[q];
    if (space === undefined) return;
    // Never invent slots in our own space beyond what we proposed (a SYNC could claim more).
    const limit = q === this.id ? Math.min(upTo, this.nextInstance - 1) : upTo;
    for (let j = this.known[q]! + 1; j <= limit; j++) {
      if (!space.has(j)) this.placeholder({ replica: q, instance: j });
    }
    if (limit > this.known[q]!) this.known[q] = limit;
  }

  /** Something happened to the instance: postpone recovery by a randomised timeout. */
  private progress(rec: InstanceRecord): void {
    const now = this.env.nowUs();
    rec.lastProgressUs = now;
    rec.recoverAfterUs = now + Math.round(this.options.timeoutUs * (1.5 + this.env.rng.next()));
  }

  private vote(rec: InstanceRecord, attrs: Attributes, status: 'preaccepted' | 'accepted', ballot: number): void {
    rec.attrs = attrs;
    rec.status = status;
    rec.vbal = ballot;
    rec.preAcceptedEq = false;
    this.promise(rec, ballot);
    this.conflicts.record(rec.id, attrs.cmd, attrs.seq);
    this.progress(rec);
  }

  /** Promising a ballot also ends any lower-ballot drive of ours (it could no longer commit safely). */
  private promise(rec: InstanceRecord, ballot: number): void {
    if (ballot > rec.promised) rec.promised = ballot;
    const key = this.slotKey(rec.id);
    const drive = this.drives.get(key);
    if (drive !== undefined && drive.ballot < rec.promised) this.drives.delete(key);
  }

  private isCommitted(rec: InstanceRecord | undefined): boolean {
    return rec !== undefined && rec.attrs !== null && (rec.status === 'committed' || rec.status === 'executed');
  }

  /** Ballot 0 belongs to the instance's command leader, ballot c·n + r (c ≥ 1) to replica r. */
  private ownsBallot(sender: NodeId, ballot: number, leader: NodeId): boolean {
    return ballot === DEFAULT_BALLOT ? sender === leader : ballot % this.n === sender;
  }

  private newDrive(id: InstanceId, phase: Drive['phase'], ballot: number, recovery: boolean, attrs: Attributes): Drive {
    return {
      id,
      phase,
      ballot,
      recovery,
      attrs,
      preAcceptReplies: new Map(),
      acceptOks: new Set(),
      phaseStartedUs: this.env.nowUs(),
      prepareReplies: new Map(),
      lastSentUs: this.env.nowUs(),
      attempts: 0,
    };
  }

  private traceInstance(phase: Phase, id: InstanceId, ballot: number, attrs: Attributes | null, latencyUs?: number | null, retransmissions?: number): void {
    this.env.trace({
      phase,
      view: Math.max(0, ballot),
      seq: id.instance,
      leader: id.replica,
      batchSize: 1,
      depsCount: attrs === null ? 0 : depsCount(attrs.deps),
      latencyUs,
      retransmissions,
    });
  }
}
