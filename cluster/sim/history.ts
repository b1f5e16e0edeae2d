/**
 * The client history in the shape Knossos, Porcupine and Elle read (see
 * /work/shared/notes/consensus-facts.md): invoke, then ok / fail / info, per process.
 */
export type HistoryType = 'invoke' | 'ok' | 'fail' | 'info';
export type HistoryF = 'read' | 'write' | 'cas';
export type HistoryValue = string | null | readonly [string | null, string];

export interface HistoryEvent {
  readonly process: number;
  readonly type: HistoryType;
  readonly f: HistoryF;
  readonly key: string;
  readonly value?: HistoryValue;
  /** Virtual microseconds since the simulation epoch; only order matters to checkers. */
  readonly time: number;
}
