/**
 * The checks the harness runs after every simulation, over cluster/verify's checkers: total order
 * (PBFT), per-key order (both: EPaxos only orders conflicting commands), exactly-once execution,
 * and linearizability of the client history. Results are flattened into one violation list.
 */
import type { Protocol } from '../../core/trace-schema.ts';
import type { NodeId } from '../protocol.ts';
import type { ExecutedLog } from '../state/verified-state-machine.ts';
import { checkLinearizability, type LinearizabilityReport } from '../verify/linearizability.ts';
import { checkExactlyOnce, checkPerKeyOrder, checkTotalOrder, type SafetyViolation } from '../verify/safety.ts';
import type { HistoryEvent } from './history.ts';

export type RunViolationKind = 'total-order' | 'per-key-order' | 'result-divergence' | 'duplicate-execution' | 'shadow-mismatch' | 'liveness' | 'linearizability';

export interface RunViolation {
  readonly kind: RunViolationKind;
  readonly detail: string;
  readonly node?: NodeId;
  readonly position?: number;
}

const MAX_REPORTED = 50;

export function checkExecutedLogs(protocol: Protocol, logs: ReadonlyMap<NodeId, ExecutedLog>): RunViolation[] {
  const found = [...checkExactlyOnce(logs), ...(protocol === 'pbft' ? checkTotalOrder(logs) : []), ...checkPerKeyOrder(logs)];
  return found.slice(0, MAX_REPORTED).map((v) => ({ kind: v.kind, detail: v.message, node: v.node, position: v.position }));
}

export function checkHistory(history: readonly HistoryEvent[], maxStepsPerKey?: number): { report: LinearizabilityReport; violations: RunViolation[] } {
  const report = checkLinearizability(history, maxStepsPerKey === undefined ? {} : { maxStepsPerKey });
  // `unknown` (search bound hit) is reported in the result but is not evidence of a bug.
  const violations: RunViolation[] = report.result === 'illegal' ? [{ kind: 'linearizability', detail: report.explanation }] : [];
  return { report, violations };
}

/** The running monitor's findings as run violations (it already stops at its report limit). */
export function monitorViolations(found: readonly SafetyViolation[]): RunViolation[] {
  return found.slice(0, MAX_REPORTED).map((v) => ({ kind: v.kind, detail: v.message, node: v.node, position: v.position }));
}
