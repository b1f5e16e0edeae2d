/**
 * Safety checks over the executed-operation logs of the CORRECT replicas (faulty ones may log
 * anything). Each check returns every violation it finds, with the node, position and both
 * requests, so a failing chaos seed can be debugged from the report alone.
 *
 * - Total order (PBFT): at every position both replicas executed, they executed the same request
 *   and got the same result.
 * - Per-key order (EPaxos; PBFT implies it): for every key, the sequences of requests that touched
 *   it are prefix-consistent across replicas, with equal results. For a register the result of an
 *   operation depends only on the earlier operations on its key, so equal per-key sequences must
 *   give equal results.
 * - Exactly-once: no replica executed the same (clientId, requestId) twice.
 *
 * Logs may have holes (positions skipped by a state transfer). Total order simply skips them; the
 * per-key sequence of a replica is only known up to its first hole, so per-key order compares
 * that prefix.
 */
import type { NodeId, Operation, OperationResult } from '../protocol.ts';
import type { ExecutedLog, ExecutedOp } from '../state/verified-state-machine.ts';

export type SafetyViolationKind = 'total-order' | 'per-key-order' | 'result-divergence' | 'duplicate-execution';

export interface SafetyViolation {
  readonly kind: SafetyViolationKind;
  readonly node: NodeId;
  /** The replica it disagrees with (absent for duplicate executions, which are local). */
  readonly otherNode?: NodeId;
  /** Position in `node`'s log; for per-key checks, the index in the key's sequence. */
  readonly position: number;
  readonly otherPosition?: number;
  readonly key?: string;
  readonly request: ExecutedOp;
  readonly otherRequest: ExecutedOp;
  readonly message: string;
}

export interface NodeLog {
  readonly node: NodeId;
  readonly log: ExecutedLog;
}

/** Logs of correct replicas, as an array of `{node, log}` or a map node → log. */
export type NodeLogs = ReadonlyArray<NodeLog> | ReadonlyMap<NodeId, ExecutedLog>;

function normalise(logs: NodeLogs): NodeLog[] {
  if (Array.isArray(logs)) return [...(logs as ReadonlyArray<NodeLog>)];
  return [...(logs as ReadonlyMap<NodeId, ExecutedLog>)].map(([node, log]) => ({ node, log }));
}

export function describeRequest(op: ExecutedOp): string {
  const origin = op.clientId < 0 ? 'unknown request' : `client ${op.clientId} request ${op.requestId}`;
  return `${origin} ${describeOperation(op.op)} → ${JSON.stringify(op.result.value)}${op.result.applied ? '' : ' (not applied)'}`;
}

function describeOperation(op: Operation): string {
  switch (op.kind) {
    case 'read':
      return `read(${JSON.stringify(op.key)})`;
    case 'write':
      return `write(${JSON.stringify(op.key)}, ${JSON.stringify(op.value)})`;
    case 'cas':
      return `cas(${JSON.stringify(op.key)}, ${JSON.stringify(op.expected)} → ${JSON.stringify(op.value)})`;
  }
}

/** Same request: same client and request id when both are known, and the same operation. */
export function sameRequest(a: ExecutedOp, b: ExecutedOp): boolean {
  if (a.clientId !== b.clientId || a.requestId !== b.requestId) return false;
  return sameOperation(a.op, b.op);
}

function sameOperation(a: Operation, b: Operation): boolean {
  if (a.kind !== b.kind || a.key !== b.key) return false;
  if (a.kind === 'read') return true;
  if (a.kind === 'write') return b.kind === 'write' && a.value === b.value;
  return b.kind === 'cas' && a.expected === b.expected && a.value === b.value;
}

function sameResult(a: OperationResult, b: OperationResult): boolean {
  return a.value === b.value && a.applied === b.applied;
}

/**
 * Every replica is compared with the first one that executed each position (the reference), so
 * n diverging replicas yield n-1 violations per position rather than n².
 */
export function checkTotalOrder(logs: NodeLogs): SafetyViolation[] {
  const nodes = normalise(logs);
  const violations: SafetyViolation[] = [];
  const longest = Math.max(0, ...nodes.map((n) => n.log.length));
  for (let position = 0; position < longest; position++) {
    let reference: { node: NodeId; op: ExecutedOp } | null = null;
    for (const { node, log } of nodes) {
      const op = log[position];
      if (op === undefined) continue;
      if (reference === null) {
        reference = { node, op };
        continue;
      }
      if (!sameRequest(reference.op, op)) {
        violations.push({
          kind: 'total-order',
          node,
          otherNode: reference.node,
          position,
          otherPosition: position,
          request: op,
          otherRequest: reference.op,
          message: `position ${position}: node ${node} executed ${describeRequest(op)} but node ${reference.node} executed ${describeRequest(reference.op)}`,
        });
      } else if (!sameResult(reference.op.result, op.result)) {
        violations.push({
          kind: 'result-divergence',
          node,
          otherNode: reference.node,
          position,
          otherPosition: position,
          request: op,
          otherRequest: reference.op,
          message: `position ${position}: same request, different results: node ${node} ${describeRequest(op)}, node ${reference.node} ${describeRequest(reference.op)}`,
        });
      }
    }
  }
  return violations;
}

/** The operations on each key, in execution order, up to the log's first hole. */
/**
 * Per key, the state-changing operations in execution order. Reads are left out: two reads do not
 * conflict, so replicas may legally run reads between the same two writes in different orders
 * (EPaxos does); what a read returned is judged by the linearizability checker instead.
 */
function perKeySequences(log: ExecutedLog): Map<string, ExecutedOp[]> {
  const byKey = new Map<string, ExecutedOp[]>();
  for (let position = 0; position < log.length; position++) {
    const op = log[position];
    if (op === undefined) break;
    if (op.op.kind === 'read') continue;
    let sequence = byKey.get(op.key);
    if (sequence === undefined) byKey.set(op.key, (sequence = []));
    sequence.push(op);
  }
  return byKey;
}

export function checkPerKeyOrder(logs: NodeLogs): SafetyViolation[] {
  const nodes = normalise(logs).map(({ node, log }) => ({ node, byKey: perKeySequences(log) }));
  const keys = new Set<string>();
  for (const { byKey } of nodes) for (const key of byKey.keys()) keys.add(key);
  const violations: SafetyViolation[] = [];
  for (const key of [...keys].sort()) {
    // The reference for each index is the first replica that has one; report only the first
    // divergence per (replica, key): after it, every later index differs too.
    const diverged = new Set<NodeId>();
    const longest = Math.max(...nodes.map((n) => n.byKey.get(key)?.length ?? 0));
    for (let index = 0; index < longest; index++) {
      let reference: { node: NodeId; op: ExecutedOp } | null = null;
      for (const { node, byKey } of nodes) {
        const op = byKey.get(key)?.[index];
        if (op === undefined || diverged.has(node)) continue;
        if (reference === null) {
          reference = { node, op };
          continue;
        }
        const kind: SafetyViolationKind | null = !sameRequest(reference.op, op)
          ? 'per-key-order'
          : !sameResult(reference.op.result, op.result)
            ? 'result-divergence'
            : null;
        if (kind === null) continue;
        diverged.add(node);
        violations.push({
          kind,
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
  }
  return violations;
}

/** Anonymous executions (clientId < 0) cannot be told apart and are skipped. */
export function checkExactlyOnce(logs: NodeLogs): SafetyViolation[] {
  const violations: SafetyViolation[] = [];
  for (const { node, log } of normalise(logs)) {
    const seen = new Map<string, ExecutedOp>();
    for (const op of log) {
      if (op === undefined || op.clientId < 0) continue;
      const id = `${op.clientId}:${op.requestId}`;
      const first = seen.get(id);
      if (first === undefined) {
        seen.set(id, op);
        continue;
      }
      violations.push({
        kind: 'duplicate-execution',
        node,
        position: op.position,
        otherPosition: first.position,
        key: op.key,
        request: op,
        otherRequest: first,
        message: `node ${node} executed client ${op.clientId} request ${op.requestId} twice: at positions ${first.position} and ${op.position}`,
      });
    }
  }
  return violations;
}

export interface SafetyCheckOptions {
  /** PBFT: true (a total order is promised); EPaxos: false (only per-key order). */
  readonly totalOrder: boolean;
}

/** All checks that apply to a protocol, violations in a stable order. */
export function checkSafety(logs: NodeLogs, options: SafetyCheckOptions): SafetyViolation[] {
  return [
    ...(options.totalOrder ? checkTotalOrder(logs) : []),
    ...checkPerKeyOrder(logs),
    ...checkExactlyOnce(logs),
  ];
}

/** What two replicas did differently at the same operation on a key (both checkers say it so). */
export function keyDivergenceMessage(key: string, index: number, node: NodeId, op: ExecutedOp, otherNode: NodeId, otherOp: ExecutedOp): string {
  return (
    `key ${JSON.stringify(key)}, operation #${index} on it: node ${node} executed ${describeRequest(op)} ` +
    `(position ${op.position}) but node ${otherNode} executed ${describeRequest(otherOp)} (position ${otherOp.position})`
  );
}
