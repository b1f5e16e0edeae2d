/**
 * Linearizability of a client history checked while it is recorded, so a run keeps only the
 * operations still in play rather than its whole history (issue 14 §4).
 *
 * Per key (linearizability is compositional), operations are gathered into a segment until the
 * key is quiescent: every operation invoked on it has returned, and the next invoke comes strictly
 * later than the last return (equal times count as overlapping, as in the batch checker, so a cut
 * there would forbid an order the batch checker allows). Every operation of a closed segment
 * precedes every later one in real time, so any linearization of the whole history is one of the
 * segment followed by one of the rest. The segment is searched exhaustively
 * (linearizability.ts searchRegister) for every value the register can hold at its end, and those
 * values start the next segment. The verdict is therefore the batch checker's, on the same
 * operations; only the memory differs. An operation whose outcome is unknown (`info`, or never
 * completed) may take effect at any later time, so its key stays open to the end of the history.
 *
 * The search bound applies per segment (`maxStepsPerKey`); a key that hits it is `unknown` and is
 * not checked further, one found illegal is not either.
 */
import { ValidationError } from '../../core/errors.ts';
import type { CasValue, HistoryEvent } from './history.ts';
import { searchRegister, type LinearizabilityReport, type RegisterOperation } from './linearizability.ts';

export interface LinearizabilityMonitorOptions {
  /** Search steps allowed per segment of a key before answering `unknown` (default 5 million). */
  readonly maxStepsPerKey?: number;
  /** A quiescent key's segment is checked once it holds at least this many operations (default 32). */
  readonly minSegmentOps?: number;
}

interface KeyState {
  /** Completed (and unknown-outcome) operations of the open segment. */
  ops: RegisterOperation[];
  /** Operations invoked on the key and not yet returned (unknown outcomes never return). */
  open: number;
  lastReturn: number;
  /** Values the register may hold at the start of the open segment. */
  starts: ReadonlyArray<string | null>;
  verdict: 'ok' | 'illegal' | 'unknown';
  explanation: string;
  operations: number;
  steps: number;
  segments: number;
}

const DEFAULT_MAX_STEPS = 5_000_000;
const DEFAULT_MIN_SEGMENT = 32;

export class LinearizabilityMonitor {
  private readonly maxSteps: number;
  private readonly minSegmentOps: number;
  private readonly keys = new Map<string, KeyState>();
  private readonly pending = new Map<number, HistoryEvent>();
  private events = 0;
  private finished: LinearizabilityReport | null = null;
  /** Largest number of operations held for one key at once: the memory the check needs. */
  peakSegmentOps = 0;

  constructor(options: LinearizabilityMonitorOptions = {}) {
    this.maxSteps = options.maxStepsPerKey ?? DEFAULT_MAX_STEPS;
    this.minSegmentOps = Math.max(1, options.minSegmentOps ?? DEFAULT_MIN_SEGMENT);
  }

  observe(event: HistoryEvent): void {
    if (this.finished !== null) throw new ValidationError('history', [{ path: `event ${this.events + 1}`, message: 'arrived after the history was finished' }]);
    this.events++;
    const at = `event ${this.events} (process ${event.process})`;
    if (event.type === 'invoke') {
      if (this.pending.has(event.process)) throw new ValidationError('history', [{ path: at, message: 'invoke while the process has an operation outstanding' }]);
      if (inputOf(event) === undefined) throw new ValidationError('history', [{ path: at, message: `${event.f} invoke has no valid value` }]);
      const key = this.keyState(event.key);
      if (key.open === 0 && key.ops.length >= this.minSegmentOps && event.time > key.lastReturn) this.closeSegment(event.key, key);
      key.open++;
      this.pending.set(event.process, event);
      return;
    }
    const invoke = this.pending.get(event.process);
    if (invoke === undefined) throw new ValidationError('history', [{ path: at, message: `${event.type} without a matching invoke` }]);
    this.pending.delete(event.process);
    if (invoke.f !== event.f || invoke.key !== event.key) {
      throw new ValidationError('history', [{ path: at, message: `completes ${event.f} ${event.key} but the invoke was ${invoke.f} ${invoke.key}` }]);
    }
    const key = this.keyState(invoke.key);
    const completed = event.type === 'ok';
    if (event.type === 'fail' || (invoke.f === 'read' && !completed)) {
      // Surely no effect (fail), or an unknown read (changes nothing): dropped, as in the batch checker.
      key.open--;
      key.lastReturn = Math.max(key.lastReturn, event.time);
      return;
    }
    if (invoke.f === 'read' && event.value !== null && typeof event.value !== 'string') {
      throw new ValidationError('history', [{ path: at, message: 'a read ok must carry the value read (string or null)' }]);
    }
    this.add(key, invoke, completed ? (invoke.f === 'read' ? (event.value as string | null) : null) : null, completed, event.time);
    if (completed) {
      key.open--;
      key.lastReturn = Math.max(key.lastReturn, event.time);
    }
  }

  /** Closes the history: operations never completed may take effect at any time after their call. */
  finish(): LinearizabilityReport {
    if (this.finished !== null) return this.finished;
    for (const invoke of this.pending.values()) {
      if (invoke.f === 'read') continue;
      this.add(this.keyState(invoke.key), invoke, null, false, Number.POSITIVE_INFINITY);
    }
    this.pending.clear();
    let operations = 0;
    let steps = 0;
    let keysChecked = 0;
    let unknown: { key: string; explanation: string } | null = null;
    let illegal: { key: string; explanation: string } | null = null;
    for (const [name, key] of [...this.keys].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
      if (key.verdict === 'ok' && key.ops.length > 0) this.checkSegment(key, false);
      if (key.operations === 0) continue;
      keysChecked++;
      operations += key.operations;
      steps += key.steps;
      if (key.verdict === 'illegal' && illegal === null) illegal = { key: name, explanation: `key ${JSON.stringify(name)}: ${key.explanation}` };
      if (key.verdict === 'unknown' && unknown === null) unknown = { key: name, explanation: `key ${JSON.stringify(name)}: ${key.explanation}` };
    }
    this.keys.clear();
    const first = illegal ?? unknown;
    this.finished =
      first !== null
        ? { ok: false, result: illegal !== null ? 'illegal' : 'unknown', ...first, keysChecked, operations, steps }
        : { ok: true, result: 'ok', explanation: `${operations} operations on ${keysChecked} keys are linearizable`, keysChecked, operations, steps };
    return this.finished;
  }

  private keyState(name: string): KeyState {
    let key = this.keys.get(name);
    if (key === undefined) {
      key = { ops: [], open: 0, lastReturn: Number.NEGATIVE_INFINITY, starts: [null], verdict: 'ok', explanation: '', operations: 0, steps: 0, segments: 0 };
      this.keys.set(name, key);
    }
    return key;
  }

  private add(key: KeyState, invoke: HistoryEvent, output: string | null, completed: boolean, returned: number): void {
    key.operations++;
    if (key.verdict !== 'ok') return;
    key.ops.push({
      process: invoke.process,
      f: invoke.f,
      input: inputOf(invoke) ?? null,
      output,
      completed,
      call: invoke.time,
      ret: completed ? returned : Number.POSITIVE_INFINITY,
    });
    if (key.ops.length > this.peakSegmentOps) this.peakSegmentOps = key.ops.length;
  }

  private closeSegment(_name: string, key: KeyState): void {
    if (key.verdict === 'ok') this.checkSegment(key, true);
    key.ops = [];
  }

  private checkSegment(key: KeyState, collectFinals: boolean): void {
    const result = searchRegister(key.ops, key.starts, this.maxSteps, collectFinals);
    key.steps += result.steps;
    key.segments++;
    key.ops = [];
    if (result.result !== 'ok') {
      key.verdict = result.result;
      key.explanation = result.explanation;
      return;
    }
    if (collectFinals) key.starts = result.finals;
  }
}

function inputOf(event: HistoryEvent): string | CasValue | null | undefined {
  if (event.f === 'read') return null;
  if (event.f === 'write' && typeof event.value === 'string') return event.value;
  if (event.f === 'cas' && Array.isArray(event.value)) return event.value as CasValue;
  return undefined;
}
