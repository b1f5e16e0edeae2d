/**
 * What the harness needs from a node's state machine beyond the protocol's `StateMachine`: the
 * runtime-vs-shadow check after every transition, the executed log for the safety checkers and
 * the chaos engine's corruption hook. cluster/state's VerifiedStateMachine has this shape; tests
 * may plug in something smaller.
 */
import type { Rng } from '../../core/rng.ts';
import type { NodeId, StateMachine } from '../protocol.ts';
import type { ExecutedLog } from '../state/verified-state-machine.ts';

export interface StateCheck {
  readonly runtime: string;
  readonly shadow: string;
  readonly match: boolean;
}

export interface HarnessStateMachine extends StateMachine {
  check(): StateCheck;
  executedLog(): ExecutedLog;
  /** state_corruption: change the runtime's state behind the shadow's back. */
  corrupt(rng: Rng): unknown;
}

export type StateMachineFactory = (node: NodeId) => HarnessStateMachine;
