/**
 * Which faults a protocol is built to survive. PBFT tolerates up to f Byzantine-or-crashed
 * replicas; EPaxos tolerates crashes, omissions and network faults on up to f replicas but no
 * Byzantine behaviour. Within the model a run must be safe AND live; beyond it only safety is
 * checked, and the run is labelled so (as TigerBeetle's VOPR does).
 */
import type { FaultKind, Protocol } from '../../core/trace-schema.ts';
import type { NodeId } from '../protocol.ts';
import type { FaultSpec } from './scenario.ts';

/** Kinds that make the targeted node itself misbehave (its own output is not trustworthy). */
export const BYZANTINE_KINDS: ReadonlySet<FaultKind> = new Set(['equivocation', 'forged_vote', 'withheld_vote', 'replay', 'silent', 'state_corruption']);

/** Kinds EPaxos cannot tolerate at all: it assumes non-Byzantine replicas. */
export const EPAXOS_BEYOND_KINDS: ReadonlySet<FaultKind> = new Set(['equivocation', 'forged_vote', 'state_corruption']);

/** Kinds whose targeted nodes count against f (network faults heal and do not). */
const COUNTED_KINDS: ReadonlySet<FaultKind> = new Set([...BYZANTINE_KINDS, 'crash']);

export interface FaultModelVerdict {
  readonly beyondFaultModel: boolean;
  readonly reasons: readonly string[];
  /** Nodes whose own behaviour was adversarial at some point: excluded from the safety comparison. */
  readonly byzantineNodes: readonly NodeId[];
  /** Nodes that count against f (crashed or Byzantine). */
  readonly countedNodes: readonly NodeId[];
}

export function faultToleranceOf(protocol: Protocol, n: number): number {
  return protocol === 'pbft' ? Math.floor((n - 1) / 3) : Math.floor((n - 1) / 2);
}

export function judgeFaultModel(protocol: Protocol, nodes: number, faults: readonly FaultSpec[], f: number = faultToleranceOf(protocol, nodes)): FaultModelVerdict {
  const reasons: string[] = [];
  const byzantine = new Set<NodeId>();
  const counted = new Set<NodeId>();
  let unresolvedLeaders = 0;
  for (const fault of faults) {
    const nodes = 'nodes' in fault ? fault.nodes : undefined;
    // `leader` not resolved (the fault never started, or judged before the run): one node,
    // unknown, counted as a distinct one (the caller passes the engine's resolved faults after a run).
    if (nodes === 'leader') unresolvedLeaders++;
    const targets = Array.isArray(nodes) ? nodes : [];
    if (BYZANTINE_KINDS.has(fault.kind)) for (const node of targets) byzantine.add(node);
    if (COUNTED_KINDS.has(fault.kind)) for (const node of targets) counted.add(node);
    if (protocol === 'epaxos' && EPAXOS_BEYOND_KINDS.has(fault.kind)) {
      reasons.push(`${fault.kind} is Byzantine: EPaxos assumes crash/omission faults only`);
    }
    if (fault.kind === 'crash' && fault.amnesia === true) {
      // A replica that forgot what it voted for may vote otherwise: PBFT counts it as one of its
      // f faulty replicas (and its log is not compared); EPaxos assumes state survives a crash.
      for (const node of targets) byzantine.add(node);
      if (protocol === 'epaxos') reasons.push('crash with amnesia: EPaxos assumes a replica keeps its state across a crash');
    }
  }
  const countedSize = counted.size + unresolvedLeaders;
  if (countedSize > f) reasons.push(`${countedSize} distinct crashed or misbehaving nodes exceed f = ${f}`);
  return {
    beyondFaultModel: reasons.length > 0,
    reasons: [...new Set(reasons)],
    byzantineNodes: [...byzantine].sort((a, b) => a - b),
    countedNodes: [...counted].sort((a, b) => a - b),
  };
}
