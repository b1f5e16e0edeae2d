/**
 * What the harness needs from a node's state machine beyond the protocol's `StateMachine`: the
 * runtime-vs-shadow check after every transition, the executed log for the safety checkers and
 * the chaos engine's corruption hook. cluster/state's VerifiedStateMachine is adapted to this.
 */
import type { Rng } from '../../core/rng.ts';
import type { NodeId, Operation, OperationResult, StateMachine } from '../protocol.ts';

export interface StateCheck {
  readonly runtime: string;
  readonly shadow: string;
  readonly match: boolean;
}

/** One executed operation at one log position of one node. */
export interface ExecutedEntry {
  readonly clientId: number;
  readonly requestId: number;
  readonly key: string;
  readonly op: Operation;
  readonly result: OperationResult;
}

export interface HarnessStateMachine extends StateMachine {
  check(): StateCheck;
  executedLog(): readonly ExecutedEntry[];
  /** state_corruption: change the runtime's state behind the shadow's back. */
  corrupt(rng: Rng): void;
}

export type StateMachineFactory = (node: NodeId) => HarnessStateMachine;
