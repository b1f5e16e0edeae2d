/**
 * The client history in the shape Knossos, Porcupine and Elle read; defined by cluster/verify.
 */
export type { HistoryEvent, HistoryEventType, HistoryFunction, HistoryValue } from '../verify/history.ts';
