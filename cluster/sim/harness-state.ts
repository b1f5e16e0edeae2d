/**
 * What the harness needs from a node's state machine beyond the protocol's `StateMachine`: the
 * runtime-vs-shadow check after every transition, the executed log for the safety checkers and
 * the chaos engine's corruption hook. cluster/state's VerifiedStateMachine has this shape; tests
 * may plug in something smaller.
 */
import type { Rng } from '../../core/rng.ts';
import type { NodeId, Operation, OperationResult, StateMachine } from '../protocol.ts';

export interface StateCheck {
  readonly runtime: string;
  readonly shadow: string;
  readonly match: boolean;
}

/** One executed operation at one log position of one node (clientId -1: origin unknown). */
export interface ExecutedEntry {
  readonly clientId: number;
  readonly requestId: number;
  readonly key: string;
  readonly op: Operation;
  readonly result: OperationResult;
}

/** Positions a node never executed itself (restored from a checkpoint) are holes. */
export type ExecutedEntries = ReadonlyArray<ExecutedEntry | undefined>;

export interface HarnessStateMachine extends StateMachine {
  check(): StateCheck;
  executedLog(): ExecutedEntries;
  /** state_corruption: change the runtime's state behind the shadow's back. */
  corrupt(rng: Rng): unknown;
}

export type StateMachineFactory = (node: NodeId) => HarnessStateMachine;
