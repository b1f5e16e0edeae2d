/**
 * Safety checks over the executed logs of the correct nodes, as the harness runs them after every
 * simulation: one total order (PBFT), per-key order (both protocols: EPaxos only orders
 * conflicting commands) and exactly-once execution.
 */
import type { Protocol } from '../../core/trace-schema.ts';
import type { NodeId } from '../protocol.ts';
import type { ExecutedEntries, ExecutedEntry } from './harness-state.ts';

export type SafetyViolationKind = 'total_order' | 'per_key_order' | 'duplicate_execution' | 'shadow_mismatch' | 'liveness' | 'linearizability';

export interface SafetyViolation {
  readonly kind: SafetyViolationKind;
  readonly detail: string;
  readonly node?: NodeId;
  readonly position?: number;
}

function identity(entry: ExecutedEntry): string {
  return entry.clientId >= 0 ? `c${entry.clientId}/r${entry.requestId}` : JSON.stringify(entry.op);
}

export function checkExecutedLogs(protocol: Protocol, logs: ReadonlyMap<NodeId, ExecutedEntries>): SafetyViolation[] {
  const violations: SafetyViolation[] = [];
  const nodes = [...logs.keys()].sort((a, b) => a - b);
  for (const node of nodes) violations.push(...checkExactlyOnce(node, logs.get(node) ?? []));
  if (protocol === 'pbft') violations.push(...checkTotalOrder(nodes, logs));
  violations.push(...checkPerKeyOrder(nodes, logs));
  return violations;
}

function checkExactlyOnce(node: NodeId, log: ExecutedEntries): SafetyViolation[] {
  const seen = new Map<string, number>();
  const out: SafetyViolation[] = [];
  log.forEach((entry, position) => {
    if (entry === undefined || entry.clientId < 0) return;
    const id = identity(entry);
    const first = seen.get(id);
    if (first !== undefined) out.push({ kind: 'duplicate_execution', node, position, detail: `node ${node} executed ${id} at positions ${first} and ${position}` });
    else seen.set(id, position);
  });
  return out;
}

/** No two correct nodes executed different requests at the same position. */
function checkTotalOrder(nodes: readonly NodeId[], logs: ReadonlyMap<NodeId, ExecutedEntries>): SafetyViolation[] {
  const reference = new Map<number, { node: NodeId; id: string }>();
  const out: SafetyViolation[] = [];
  for (const node of nodes) {
    (logs.get(node) ?? []).forEach((entry, position) => {
      if (entry === undefined) return;
      const id = identity(entry);
      const prior = reference.get(position);
      if (prior === undefined) reference.set(position, { node, id });
      else if (prior.id !== id && out.length < 20) {
        out.push({ kind: 'total_order', node, position, detail: `position ${position}: node ${prior.node} executed ${prior.id}, node ${node} executed ${id}` });
      }
    });
  }
  return out;
}

/** Per key, the nodes' sequences of executed requests are prefixes of one another. Nodes with
 * holes (state transfer) are skipped: their per-key sequences are legitimately incomplete. */
function checkPerKeyOrder(nodes: readonly NodeId[], logs: ReadonlyMap<NodeId, ExecutedEntries>): SafetyViolation[] {
  const out: SafetyViolation[] = [];
  const longest = new Map<string, { node: NodeId; ids: string[] }>();
  for (const node of nodes) {
    const log = logs.get(node) ?? [];
    let hasHoles = false;
    for (let i = 0; i < log.length; i++) if (log[i] === undefined) hasHoles = true;
    if (hasHoles) continue;
    const perKey = new Map<string, string[]>();
    for (const entry of log) {
      if (entry === undefined) continue;
      let ids = perKey.get(entry.key);
      if (ids === undefined) perKey.set(entry.key, (ids = []));
      ids.push(identity(entry));
    }
    for (const [key, ids] of perKey) {
      const prior = longest.get(key);
      if (prior === undefined) {
        longest.set(key, { node, ids });
        continue;
      }
      const common = Math.min(prior.ids.length, ids.length);
      for (let i = 0; i < common; i++) {
        if (prior.ids[i] !== ids[i]) {
          if (out.length < 20) out.push({ kind: 'per_key_order', node, position: i, detail: `key ${key}, ${i}th op: node ${prior.node} executed ${prior.ids[i]}, node ${node} executed ${ids[i]}` });
          break;
        }
      }
      if (ids.length > prior.ids.length) longest.set(key, { node, ids });
    }
  }
  return out;
}
