/**
 * The contract between a consensus protocol (PBFT, EPaxos) and the harness that runs it, in the
 * deterministic simulator or as real OS processes over TCP. A protocol is pure logic: it sees
 * time, randomness, the network, timers and the state machine only through `ReplicaEnv`, so the
 * same code runs on virtual time with a seed or on the wall clock with sockets.
 */
import type { RejectReason } from '../core/metrics-snapshot.ts';
import type { Protocol, Phase } from '../core/trace-schema.ts';
import type { Rng } from '../core/rng.ts';

export type NodeId = number;

/** A client operation on the replicated key-value store. */
export type Operation =
  | { kind: 'read'; key: string }
  | { kind: 'write'; key: string; value: string }
  | { kind: 'cas'; key: string; expected: string | null; value: string };

/** What the state machine answers. A read returns the value (null if never written); a write
 * returns the value written; a cas returns the value before and whether it applied. */
export interface OperationResult {
  readonly value: string | null;
  readonly applied: boolean;
}

/** A client request: `clientId` + `requestId` identify it exactly once (PBFT's timestamp). */
export interface ClientRequest {
  readonly clientId: number;
  readonly requestId: number;
  readonly op: Operation;
  /** The client's MAC over the other fields (auth.ts createRequestSigner); PBFT replicas reject a
   * request without a valid one, wherever it arrives from. EPaxos (crash faults only) ignores it:
   * clients sign whatever the protocol, so one client path serves both. */
  readonly mac?: string;
}

export interface ClientReply {
  readonly clientId: number;
  readonly requestId: number;
  readonly result: OperationResult;
  /** Which replica replies, and in which view/ballot (a PBFT client uses it to find the primary). */
  readonly replica: NodeId;
  readonly view: number;
}

/**
 * Every protocol message is a plain JSON-serialisable object with a `type`, its claimed sender
 * and a MAC over the rest (see auth.ts). Nothing else is assumed by the harness.
 */
export interface Message {
  readonly type: string;
  readonly from: NodeId;
  mac?: string;
  readonly [field: string]: unknown;
}

export interface TimerHandle {
  readonly id: number;
}

/** What a replica reports for one transition; the harness adds run id, node, time, message
 * counts, state and shadow hashes and the active fault labels, and emits a trace record. */
export interface Transition {
  readonly phase: Phase;
  readonly view: number;
  readonly seq: number;
  readonly leader: NodeId;
  readonly batchSize?: number;
  readonly depsCount?: number;
  readonly latencyUs?: number | null;
  readonly retransmissions?: number;
}

/**
 * The replicated state machine as a replica sees it. The harness pairs it with an independently
 * written shadow model: every `execute` is fed to both, and their BLAKE3 state hashes are compared
 * after every transition.
 */
export interface StateMachine {
  /** `origin` (optional; pass the ClientRequest) lets a verifying wrapper log who asked for what,
   * so the safety checkers can compare executed requests across replicas. */
  execute(op: Operation, origin?: RequestOrigin): OperationResult;
  /** BLAKE3-256 of the state, lowercase hex; incremental, O(1) to read. */
  digest(): string;
  /** A copy of the whole state, for checkpoints and state transfer. */
  snapshot(): StateSnapshot;
  restore(snapshot: StateSnapshot): void;
}

/** Identifies a client request (a ClientRequest is one). */
export interface RequestOrigin {
  readonly clientId: number;
  readonly requestId: number;
}

export interface StateSnapshot {
  readonly entries: ReadonlyArray<readonly [string, string]>;
}

/** Message authentication: a MAC per sender key, so a node cannot speak for another one. */
export interface Authenticator {
  sign(message: Message): Message;
  verify(message: Message): boolean;
  /** Whether a client request carries its client's valid MAC. */
  verifyRequest(request: ClientRequest): boolean;
}

/** What a client signs its requests with (it holds its own key, no replica's). */
export interface RequestSigner {
  sign(request: ClientRequest): ClientRequest;
}

/** Everything a replica may touch. No other effects are allowed in protocol code. */
export interface ReplicaEnv {
  readonly id: NodeId;
  /** All replica ids, 0..n-1. */
  readonly replicas: readonly NodeId[];
  /** Faults tolerated: PBFT n = 3f+1, EPaxos n = 2f+1. */
  readonly f: number;
  readonly rng: Rng;
  /** This node's wall clock in microseconds: stepped by a clock_skew offset and running fast or
   * slow under its drift (see docs/scenarios.md, "Clocks"). Protocol decisions that compare it
   * with stored times (EPaxos's recovery and retransmission deadlines) see the steps. */
  nowUs(): number;
  /** Sends to one replica. The harness signs nothing: call auth.sign first. */
  send(to: NodeId, message: Message): void;
  /** Sends to every other replica. */
  broadcast(message: Message): void;
  replyToClient(reply: ClientReply): void;
  /** Fires after `afterUs` of this node's monotonic clock (CLOCK_MONOTONIC): it runs at the
   * node's drifting rate but ignores wall-clock steps, so a drifting node's timeouts fire early or
   * late in true time and a clock step moves no deadline. */
  setTimer(afterUs: number, name: string, data?: unknown): TimerHandle;
  cancelTimer(handle: TimerHandle): void;
  readonly auth: Authenticator;
  readonly stateMachine: StateMachine;
  /** Report a transition; see Transition. */
  trace(transition: Transition): void;
  /** Counters for the node's metrics snapshots (cluster/telemetry.ts). */
  readonly telemetry: ReplicaCounters;
}

/** What a replica reports for its metrics snapshots, where it happens. */
export interface ReplicaCounters {
  /** A message from a peer was refused, and why. */
  rejected(reason: RejectReason): void;
  /** A quorum completed, `waitedUs` after its first vote (this node's clock), with `lastPeer`'s
   * vote completing it (the slowest member the quorum waited for). */
  quorumCompleted(waitedUs: number, lastPeer: NodeId): void;
  /** A vote from `from` arrived `waitedUs` after this node started waiting for it (late votes,
   * after the quorum completed, included: they show a slow peer quorums leave out). */
  voteReceived(from: NodeId, waitedUs: number): void;
}

export interface Replica {
  /** Called once when the node boots and again after every restart from a crash. Timers set
   * before the crash are gone; durable fields of the replica survive (crash with fsync'd state). */
  start(): void;
  onMessage(message: Message): void;
  onTimer(name: string, data: unknown): void;
  onClientRequest(request: ClientRequest): void;
  /** Where the replica stands, cheaply (called on every transition while the cluster recovers
   * from a fault, and for metrics snapshots): O(clients + replicas), never O(log). */
  progressReport(): ReplicaProgress;
}

/**
 * What "back to normal" is judged from (chaos/recovery.ts): the view is settled, the backlog
 * drained, the replica caught up. Positions are per protocol, monotone, and comparable between
 * replicas of one cluster.
 */
export interface ReplicaProgress {
  /** PBFT view; 0 where the protocol has no views (EPaxos ballots are per instance). */
  readonly view: number;
  /** Who this replica believes leads; null when every replica leads its own instances (EPaxos). */
  readonly leader: NodeId | null;
  /** PBFT: a view change in progress; EPaxos: an explicit prepare (recovery) in progress. */
  readonly viewChanging: boolean;
  /** Work known here and not finished: PBFT client requests not executed; EPaxos instances not
   * yet committed or committed and not executed. */
  readonly backlog: number;
  /** When the oldest client request still waiting here arrived, on this node's clock (nowUs);
   * null when none waits. */
  readonly oldestRequestUs: number | null;
  /** Positions committed here (PBFT: the last executed sequence number, since execution follows
   * commit in order; EPaxos: committed instances in the contiguous prefix of every space). */
  readonly committed: number;
  /** Positions executed here (PBFT: last executed sequence number; EPaxos: executed prefix). */
  readonly executed: number;
  /** Entries held for log positions (bounded by garbage collection), counted cheaply. */
  readonly logSize: number;
}

/** The client side of a protocol: where to send requests and when a reply is final. */
export interface ClientEnv {
  readonly clientId: number;
  readonly replicas: readonly NodeId[];
  readonly f: number;
  readonly rng: Rng;
  nowUs(): number;
  sendRequest(to: NodeId, request: ClientRequest): void;
  setTimer(afterUs: number, name: string, data?: unknown): TimerHandle;
  cancelTimer(handle: TimerHandle): void;
  /** The operation completed with this result (called once per request). */
  complete(requestId: number, result: OperationResult): void;
  /** Telemetry: the client re-sent a request (a timeout). */
  retried(): void;
}

export interface ProtocolClient {
  submit(request: ClientRequest): void;
  onReply(reply: ClientReply): void;
  onTimer(name: string, data: unknown): void;
}

/**
 * Hooks the chaos engine uses to make a node Byzantine without the protocol code knowing it is
 * faulty (the Twins idea: correct code, adversarial wiring).
 */
export interface ByzantineHooks {
  /** Votes are what "withheld" and "forged" votes act on (PBFT prepare/commit, EPaxos replies). */
  isVote(message: Message): boolean;
  /** An equivocating leader sends this conflicting variant to `to` instead (null: leave as is).
   * The variant is signed with the faulty node's own key: equivocation is authentic but two-faced. */
  equivocate(message: Message, to: NodeId, rng: Rng, auth: Authenticator): Message | null;
  /** Whether protocol decisions compare the wall clock (nowUs) with stored times. If not, a
   * clock step (clock_skew's offset) changes only node_clock_us and measured latencies, not what
   * the protocol does, and the chaos engine logs it as `no_effect` instead of labelling it. */
  readonly readsWallClock: boolean;
}

export interface ProtocolDefinition {
  readonly name: Protocol;
  /** Faults tolerated by a cluster of n replicas. */
  faultTolerance(n: number): number;
  readonly minReplicas: number;
  createReplica(env: ReplicaEnv, options: ProtocolOptions): Replica;
  createClient(env: ClientEnv, options: ProtocolOptions): ProtocolClient;
  readonly byzantine: ByzantineHooks;
}

export interface ProtocolOptions {
  /** Base timeout before a replica or client suspects the leader, microseconds. */
  readonly timeoutUs: number;
  /** PBFT: requests per pre-prepare batch (upper bound). */
  readonly batchSizeMax: number;
  /** PBFT: checkpoint interval K and log window L (watermarks). */
  readonly checkpointInterval: number;
  readonly logWindow: number;
  /**
   * Deliberate bugs for mutation testing of the checkers; never set in production. Each one
   * switches on a known protocol bug at the exact place it would live (default: none), so a test
   * can require that the chaos sweep's checkers catch it (test/cluster/mutations.test.ts).
   */
  readonly mutations?: readonly ProtocolMutation[];
}

/** The known bugs `ProtocolOptions.mutations` can switch on; see each protocol for the site. */
export type ProtocolMutation =
  /** PBFT: committed-local with 2f matching commits instead of 2f+1. */
  | 'commit-quorum-2f'
  /** PBFT: prepared (and a prepared certificate valid) with f matching prepares instead of 2f. */
  | 'prepare-quorum-f'
  /** PBFT: the new primary ignores prepared certificates and fills O with null requests (raijin #8). */
  | 'no-cert-carryover'
  /** EPaxos: fast path on a simple majority (F+1) instead of the fast quorum. */
  | 'majority-fast-quorum'
  /** EPaxos: the slow path accepts the leader's own attributes, not the union of the replies. */
  | 'no-deps-union'
  /** EPaxos: execute a committed command without waiting for its uncommitted dependencies. */
  | 'exec-ignore-deps';

export const PROTOCOL_MUTATIONS: readonly ProtocolMutation[] = [
  'commit-quorum-2f',
  'prepare-quorum-f',
  'no-cert-carryover',
  'majority-fast-quorum',
  'no-deps-union',
  'exec-ignore-deps',
];

/** Whether a deliberate bug is switched on (see `ProtocolOptions.mutations`). */
export function hasMutation(options: Pick<ProtocolOptions, 'mutations'>, mutation: ProtocolMutation): boolean {
  return options.mutations?.includes(mutation) ?? false;
}

export const DEFAULT_PROTOCOL_OPTIONS: ProtocolOptions = {
  timeoutUs: 200_000,
  batchSizeMax: 16,
  checkpointInterval: 64,
  logWindow: 128,
};
