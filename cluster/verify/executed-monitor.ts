/**
 * The safety checks of verify/safety.ts run while the simulation goes on, over a bounded window,
 * so a run's memory does not grow with its length (issue 14 §4). The batch functions there stay
 * the reference (and the unit tests' subject); this monitor reaches the same verdicts on the same
 * executions as long as no correct replica falls further behind the others than the window.
 *
 * - Total order (PBFT): the first entry seen at each log position is the reference, and every
 *   later entry at that position, from another correct replica, is compared with it on arrival.
 *   References live in a ring of `windowPositions` slots: a replica that executes a position more
 *   than that far behind the newest one is not compared (counted as `lateUnchecked`).
 * - Per-key order: the same, per key (a ring of `windowPerKey`), over the state-changing operations in execution order, up
 *   to a replica's first hole (as in the batch check: after a state transfer its per-key sequence
 *   is unknown). Only the first divergence per (replica, key) is reported.
 * - Exactly-once: per replica and client, the request ids it executed, the newest
 *   `requestWindowPerClient` of them (a client has one request outstanding, so a correct replica
 *   never executes one that far back).
 *
 * A restore that cuts a log back (a replica rolled back to an older checkpoint) ends the per-key
 * and exactly-once tracking of that replica's current log, as a hole does; what it executed before
 * the cut has already been compared. A fresh state machine (a restart with amnesia) starts a new
 * log at position 0.
 */
import { invariant } from '../../core/errors.ts';
import type { NodeId } from '../protocol.ts';
import type { ExecutedOp } from '../state/verified-state-machine.ts';
import { describeRequest, keyDivergenceMessage, sameRequest, type SafetyViolation, type SafetyViolationKind } from './safety.ts';

export interface ExecutedMonitorOptions {
  /** Compare positions across replicas (PBFT's total order); per key and exactly-once always. */
  readonly totalOrder: boolean;
  /** Replicas whose executions are checked (the correct ones); others are ignored. */
  readonly nodes: readonly NodeId[];
  /** Log positions kept for comparison (default 16,384: about 10 s of lag at the baseline load). */
  readonly windowPositions?: number;
  /** State-changing operations kept per key for comparison (default 2,048). */
  readonly windowPerKey?: number;
  /** Request ids remembered per replica and client for exactly-once (default 1,024). */
  readonly requestWindowPerClient?: number;
  /** Violations kept in full; the rest are only counted (default 50). */
  readonly maxReported?: number;
}

export interface ExecutedMonitorSummary {
  /** Executions checked (of correct replicas, anonymous ones included). */
  readonly executions: number;
  readonly violations: number;
  /** Executions too far behind the window to be compared. */
  readonly lateUnchecked: number;
  /** Restores that cut a correct replica's log back. */
  readonly cuts: number;
}

interface Reference {
  position: number;
  node: NodeId;
  op: ExecutedOp;
}

/** A ring of references indexed by position modulo its size; a slot holds the newest position seen. */
class ReferenceRing {
  private readonly slots: Array<Reference | undefined> = [];
  constructor(private readonly size: number) {}

  /** The reference at `position`, or a fresh one made from (node, op); null when too late. */
  at(position: number, node: NodeId, op: ExecutedOp): Reference | 'new' | null {
    const slot = position % this.size;
    const held = this.slots[slot];
    if (held !== undefined && held.position === position) return held;
    if (held !== undefined && held.position > position) return null;
    if (held !== undefined) {
      held.position = position;
      held.node = node;
      held.op = op;
    } else {
      this.slots[slot] = { position, node, op };
    }
    return 'new';
  }
}

interface NodeTrack {
  /** Next position of this replica's current log (its executed count). */
  next: number;
  /** Per-key tracking ended (a hole or a cut). */
  perKeyOff: boolean;
  /** Index of the next state-changing op per key. */
  readonly keyIndex: Map<string, number>;
  /** Keys on which this replica already diverged (report once). */
  readonly divergedKeys: Set<string>;
  /** Per client: its recent executions in a ring indexed by request id, and the newest id. */
  readonly requests: Map<number, { ring: Array<ExecutedOp | undefined>; newest: number }>;
}

const DEFAULT_WINDOW = 16_384;
const DEFAULT_WINDOW_PER_KEY = 2_048;
const DEFAULT_REQUEST_WINDOW = 1_024;
const DEFAULT_MAX_REPORTED = 50;

export class ExecutedMonitor {
  private readonly totalOrder: boolean;
  private readonly windowPositions: number;
  private readonly windowPerKey: number;
  private readonly requestWindow: number;
  private readonly maxReported: number;
  private readonly tracks = new Map<NodeId, NodeTrack>();
  private readonly positions: ReferenceRing;
  private readonly perKey = new Map<string, ReferenceRing>();
  private readonly reported: SafetyViolation[] = [];
  private executions = 0;
  private violationCount = 0;
  private lateUnchecked = 0;
  private cuts = 0;

  constructor(options: ExecutedMonitorOptions) {
    this.totalOrder = options.totalOrder;
    this.windowPositions = options.windowPositions ?? DEFAULT_WINDOW;
    this.windowPerKey = options.windowPerKey ?? DEFAULT_WINDOW_PER_KEY;
    this.requestWindow = options.requestWindowPerClient ?? DEFAULT_REQUEST_WINDOW;
    this.maxReported = options.maxReported ?? DEFAULT_MAX_REPORTED;
    invariant(Number.isInteger(this.windowPositions) && this.windowPositions >= 1, 'windowPositions must be a positive integer');
    invariant(Number.isInteger(this.windowPerKey) && this.windowPerKey >= 1, 'windowPerKey must be a positive integer');
    invariant(Number.isInteger(this.requestWindow) && this.requestWindow >= 1, 'requestWindowPerClient must be a positive integer');
    this.positions = new ReferenceRing(this.windowPositions);
    for (const node of options.nodes) this.tracks.set(node, freshTrack());
  }

  /** `node` turns Byzantine now (a fault aimed at whoever leads resolved to it): it behaved
   * correctly until here, and from here on its executions are not compared. */
  exclude(node: NodeId): void {
    this.tracks.delete(node);
  }

  /** A new, empty state machine for `node` (first boot, or a restart with amnesia). */
  reset(node: NodeId): void {
    if (this.tracks.has(node)) this.tracks.set(node, freshTrack());
  }

  /** `node` restored a snapshot that `count` executions produced: its log is cut or padded to `count`. */
  restored(node: NodeId, count: number): void {
    const track = this.tracks.get(node);
    if (track === undefined) return;
    if (count < track.next) {
      this.cuts++;
      track.requests.clear();
    }
    if (count !== track.next) track.perKeyOff = true;
    track.next = count;
  }

  executed(node: NodeId, op: ExecutedOp): void {
    const track = this.tracks.get(node);
    if (track === undefined) return;
    this.executions++;
    invariant(op.position === track.next, `node ${node} executed position ${op.position}, expected ${track.next}`);
    track.next = op.position + 1;
    if (op.clientId >= 0 && op.requestId >= 0) this.checkOnce(node, track, op);
    if (this.totalOrder) this.checkPosition(node, op);
    if (!track.perKeyOff && op.op.kind !== 'read') this.checkKey(node, track, op);
  }

  violations(): readonly SafetyViolation[] {
    return this.reported;
  }

  summary(): ExecutedMonitorSummary {
    return { executions: this.executions, violations: this.violationCount, lateUnchecked: this.lateUnchecked, cuts: this.cuts };
  }

  private report(violation: SafetyViolation): void {
    this.violationCount++;
    if (this.reported.length < this.maxReported) this.reported.push(violation);
  }

  private checkOnce(node: NodeId, track: NodeTrack, op: ExecutedOp): void {
    let client = track.requests.get(op.clientId);
    if (client === undefined) track.requests.set(op.clientId, (client = { ring: [], newest: op.requestId }));
    // Request ids of a client are small consecutive integers: a ring slot per id, no hashing.
    const slot = op.requestId % this.requestWindow;
    const held = client.ring[slot];
    if (held !== undefined && held.requestId === op.requestId) {
      this.report({
        kind: 'duplicate-execution',
        node,
        key: op.key,
        position: op.position,
        otherPosition: held.position,
        request: op,
        otherRequest: held,
        message: `node ${node} executed client ${op.clientId} request ${op.requestId} twice, at positions ${held.position} and ${op.position}`,
      });
      return;
    }
    if (op.requestId <= client.newest - this.requestWindow || (held !== undefined && held.requestId > op.requestId)) {
      this.lateUnchecked++;
      return;
    }
    client.ring[slot] = op;
    if (op.requestId > client.newest) client.newest = op.requestId;
  }

  private checkPosition(node: NodeId, op: ExecutedOp): void {
    const reference = this.positions.at(op.position, node, op);
    if (reference === 'new') return;
    if (reference === null) {
      this.lateUnchecked++;
      return;
    }
    if (reference.node === node) return;
    const kind = divergence(reference.op, op);
    if (kind === null) return;
    this.report({
      kind: kind === 'order' ? 'total-order' : 'result-divergence',
      node,
      otherNode: reference.node,
      position: op.position,
      otherPosition: op.position,
      request: op,
      otherRequest: reference.op,
      message:
        kind === 'order'
          ? `position ${op.position}: node ${node} executed ${describeRequest(op)} but node ${reference.node} executed ${describeRequest(reference.op)}`
          : `position ${op.position}: same request, different results: node ${node} ${describeRequest(op)}, node ${reference.node} ${describeRequest(reference.op)}`,
    });
  }

  private checkKey(node: NodeId, track: NodeTrack, op: ExecutedOp): void {
    const key = op.key;
    const index = track.keyIndex.get(key) ?? 0;
    track.keyIndex.set(key, index + 1);
    if (track.divergedKeys.has(key)) return;
    let ring = this.perKey.get(key);
    if (ring === undefined) this.perKey.set(key, (ring = new ReferenceRing(this.windowPerKey)));
    const reference = ring.at(index, node, op);
    if (reference === 'new') return;
    if (reference === null) {
      this.lateUnchecked++;
      return;
    }
    if (reference.node === node) return;
    const kind = divergence(reference.op, op);
    if (kind === null) return;
    track.divergedKeys.add(key);
    this.report({
      kind: kind === 'order' ? 'per-key-order' : 'result-divergence',
      node,
      otherNode: reference.node,
      key,
      position: index,
      otherPosition: index,
      request: op,
      otherRequest: reference.op,
      message: keyDivergenceMessage(key, index, node, op, reference.node, reference.op),
    });
  }
}

function freshTrack(): NodeTrack {
  return { next: 0, perKeyOff: false, keyIndex: new Map(), divergedKeys: new Set(), requests: new Map() };
}

function divergence(reference: ExecutedOp, op: ExecutedOp): 'order' | 'result' | null {
  if (!sameRequest(reference, op)) return 'order';
  if (reference.result.value !== op.result.value || reference.result.applied !== op.result.applied) return 'result';
  return null;
}

export type { SafetyViolation, SafetyViolationKind };
