/**
 * Linearizability checker for the key-value history (history.ts): Wing & Gong's search with
 * Lowe's memoisation, as in Porcupine's `checkSingle`.
 *
 * The history is split per key (a register per key; linearizability is compositional), and each
 * key's operations become a doubly linked list of call and return entries in time order. The
 * search walks the list: at a call it tries to linearise that operation now (the register model
 * must accept it, and the pair (set of linearised operations, register state) must be new,
 * otherwise an equivalent branch was already explored and failed); at a return it has reached an
 * operation that had to take effect before this point but did not, so it backtracks. Linearised
 * operations are lifted out of the list and put back on backtracking. Success: the list empties.
 *
 * `fail` operations are dropped (they surely had no effect); `info` and never-completed ones
 * return at +infinity, so they may take effect at any time after their call, or in effect never
 * (linearised last, where nobody observes them); an `info` read is dropped since it changes
 * nothing. Checking is NP-complete, so the search stops after `maxSteps` with `unknown`.
 */
import { ValidationError, type FieldError } from '../../core/errors.ts';
import { createRng } from '../../core/rng.ts';
import type { CasValue, HistoryEvent, HistoryFunction } from './history.ts';

export type LinearizabilityResult = 'ok' | 'illegal' | 'unknown';

export interface LinearizabilityReport {
  /** True only when every key was proven linearizable. */
  readonly ok: boolean;
  readonly result: LinearizabilityResult;
  /** The first key that is not linearizable (or could not be decided). */
  readonly key?: string;
  readonly explanation: string;
  readonly keysChecked: number;
  readonly operations: number;
  readonly steps: number;
}

export interface LinearizabilityOptions {
  /** Search steps allowed per key before answering `unknown` (default 5 million). */
  readonly maxStepsPerKey?: number;
}

/** One operation of one key, as the checker sees it. */
export interface RegisterOperation {
  readonly process: number;
  readonly f: HistoryFunction;
  /** write: the value; cas: [expected, new]; read: unused. */
  readonly input: string | CasValue | null;
  /** read: the value read. */
  readonly output: string | null;
  /** false for info / never completed: outcome unknown. */
  readonly completed: boolean;
  readonly call: number;
  /** +Infinity when not completed. */
  readonly ret: number;
}

const DEFAULT_MAX_STEPS = 5_000_000;

/** Pairs invokes with completions, drops what cannot matter, groups by key (keys sorted). */
export function operationsByKey(events: readonly HistoryEvent[]): Map<string, RegisterOperation[]> {
  const errors: FieldError[] = [];
  const pending = new Map<number, { event: HistoryEvent; index: number }>();
  const byKey = new Map<string, RegisterOperation[]>();
  const add = (key: string, op: RegisterOperation): void => {
    let list = byKey.get(key);
    if (list === undefined) byKey.set(key, (list = []));
    list.push(op);
  };
  const inputOf = (event: HistoryEvent): string | CasValue | null => {
    if (event.f === 'read') return null;
    if (event.f === 'write' && typeof event.value === 'string') return event.value;
    if (event.f === 'cas' && Array.isArray(event.value)) return event.value as CasValue;
    return undefined as never;
  };
  events.forEach((event, index) => {
    const at = `event ${index + 1} (process ${event.process})`;
    if (event.type === 'invoke') {
      if (pending.has(event.process)) {
        errors.push({ path: at, message: 'invoke while the process has an operation outstanding' });
        return;
      }
      if (inputOf(event) === undefined) {
        errors.push({ path: at, message: `${event.f} invoke has no valid value` });
        return;
      }
      pending.set(event.process, { event, index });
      return;
    }
    const open = pending.get(event.process);
    if (open === undefined) {
      errors.push({ path: at, message: `${event.type} without a matching invoke` });
      return;
    }
    pending.delete(event.process);
    const invoke = open.event;
    if (invoke.f !== event.f || invoke.key !== event.key) {
      errors.push({ path: at, message: `completes ${event.f} ${event.key} but the invoke was ${invoke.f} ${invoke.key}` });
      return;
    }
    if (event.type === 'fail') return;
    const completed = event.type === 'ok';
    if (invoke.f === 'read') {
      if (!completed) return;
      if (event.value !== null && typeof event.value !== 'string') {
        errors.push({ path: at, message: 'a read ok must carry the value read (string or null)' });
        return;
      }
    }
    add(invoke.key, {
      process: invoke.process,
      f: invoke.f,
      input: inputOf(invoke),
      output: invoke.f === 'read' ? (event.value as string | null) : null,
      completed,
      call: invoke.time,
      ret: completed ? event.time : Number.POSITIVE_INFINITY,
    });
  });
  for (const { event } of pending.values()) {
    if (event.f === 'read') continue;
    add(event.key, {
      process: event.process,
      f: event.f,
      input: inputOf(event),
      output: null,
      completed: false,
      call: event.time,
      ret: Number.POSITIVE_INFINITY,
    });
  }
  if (errors.length > 0) throw new ValidationError('history', errors.slice(0, 20));
  return new Map([...byKey].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)));
}

export function checkLinearizability(events: readonly HistoryEvent[], options: LinearizabilityOptions = {}): LinearizabilityReport {
  const byKey = operationsByKey(events);
  let operations = 0;
  let steps = 0;
  let unknown: { key: string; explanation: string } | null = null;
  for (const [key, ops] of byKey) {
    operations += ops.length;
    const single = checkRegister(ops, options.maxStepsPerKey ?? DEFAULT_MAX_STEPS);
    steps += single.steps;
    if (single.result === 'illegal') {
      return { ok: false, result: 'illegal', key, explanation: `key ${JSON.stringify(key)}: ${single.explanation}`, keysChecked: byKey.size, operations, steps };
    }
    if (single.result === 'unknown' && unknown === null) unknown = { key, explanation: `key ${JSON.stringify(key)}: ${single.explanation}` };
  }
  if (unknown !== null) return { ok: false, result: 'unknown', ...unknown, keysChecked: byKey.size, operations, steps };
  return {
    ok: true,
    result: 'ok',
    explanation: `${operations} operations on ${byKey.size} keys are linearizable`,
    keysChecked: byKey.size,
    operations,
    steps,
  };
}

export interface SingleKeyResult {
  readonly result: LinearizabilityResult;
  readonly explanation: string;
  readonly steps: number;
}

const NONE = -1;
const STATE_NULL = 0;

/** Zobrist values: the set of linearised operations hashes in O(1) per change. One table for the
 * process, grown on demand from one seeded stream (so the values are the same as if made anew per
 * call): the running checker searches many short segments, and a fresh table each time showed. */
const zobristRng = createRng('lattice-linearizability-zobrist');
let zobristLow = new Int32Array(0);
let zobristHigh = new Int32Array(0);

function zobrist(count: number): { low: Int32Array; high: Int32Array } {
  if (count > zobristLow.length) {
    const size = Math.max(count, 2 * zobristLow.length, 64);
    const low = new Int32Array(size);
    const high = new Int32Array(size);
    low.set(zobristLow);
    high.set(zobristHigh);
    for (let i = zobristLow.length; i < size; i++) {
      low[i] = Math.floor(zobristRng.next() * 0x1_0000_0000) | 0;
      high[i] = Math.floor(zobristRng.next() * 0x1_0000_0000) | 0;
    }
    zobristLow = low;
    zobristHigh = high;
  }
  return { low: zobristLow, high: zobristHigh };
}

interface CacheEntry {
  readonly bits: Uint32Array;
  readonly state: number;
}

/** Wing–Gong–Lowe search over one register's operations. */
export function checkRegister(ops: readonly RegisterOperation[], maxSteps: number = DEFAULT_MAX_STEPS): SingleKeyResult {
  const { finals: _finals, ...result } = searchRegister(ops, [null], maxSteps, false);
  return result;
}

export interface SegmentResult extends SingleKeyResult {
  /** With `collectFinals`: every value the register can hold after some linearization. */
  readonly finals: ReadonlyArray<string | null>;
}

/**
 * The search behind checkRegister, from any of `initial` register values. With `collectFinals`
 * it does not stop at the first linearization: it explores them all (the memo still prunes every
 * configuration seen before, so the work stays bounded by the distinct (set, value) pairs) and
 * returns every value the register may hold at the end. That is what lets a long history be
 * checked in segments (verify/linearizability-monitor.ts): a segment that ends where no operation
 * on the key is in flight hands its possible final values to the next one, and the chain of
 * segments is linearizable exactly when the whole history is.
 */
export function searchRegister(
  ops: readonly RegisterOperation[],
  initial: ReadonlyArray<string | null>,
  maxSteps: number = DEFAULT_MAX_STEPS,
  collectFinals = false,
): SegmentResult {
  const n = ops.length;
  if (n === 0) return { result: 'ok', explanation: 'no operations', steps: 0, finals: collectFinals ? [...new Set(initial)] : [] };

  // Register values are interned: state 0 is "never written" (null).
  const valueIds = new Map<string, number>();
  const values: Array<string | null> = [null];
  const intern = (value: string | null): number => {
    if (value === null) return STATE_NULL;
    let id = valueIds.get(value);
    if (id === undefined) {
      id = values.length;
      values.push(value);
      valueIds.set(value, id);
    }
    return id;
  };
  const kind = new Uint8Array(n); // 0 read, 1 write, 2 cas (applies iff state === expected)
  const arg1 = new Int32Array(n); // read: output; write: value; cas: expected
  const arg2 = new Int32Array(n); // cas: new value
  for (let i = 0; i < n; i++) {
    const op = ops[i] as RegisterOperation;
    if (op.f === 'read') {
      kind[i] = 0;
      arg1[i] = intern(op.output);
    } else if (op.f === 'write') {
      kind[i] = 1;
      arg1[i] = intern(op.input as string);
    } else {
      const [expected, next] = op.input as CasValue;
      kind[i] = 2;
      arg1[i] = intern(expected);
      arg2[i] = intern(next);
    }
  }
  // A completed cas must have applied (a cas that did not apply is recorded as fail and
  // dropped); one with unknown outcome applies if it can and is a no-op otherwise.
  const step = (op: number, state: number): number => {
    switch (kind[op]) {
      case 0:
        return arg1[op] === state ? state : NONE;
      case 1:
        return arg1[op] as number;
      default:
        if (arg1[op] === state) return arg2[op] as number;
        return (ops[op] as RegisterOperation).completed ? NONE : state;
    }
  };

  // Entries: 0 is the head sentinel; op i has call entry 2i+1 and return entry 2i+2.
  const entryCount = 2 * n + 1;
  const order: number[] = [];
  for (let i = 0; i < n; i++) order.push(2 * i + 1, 2 * i + 2);
  const timeOf = (entry: number): number => {
    const op = ops[(entry - 1) >> 1] as RegisterOperation;
    return entry % 2 === 1 ? op.call : op.ret;
  };
  // Time order; on equal times calls first (equal times count as overlapping: never a false alarm).
  order.sort((a, b) => timeOf(a) - timeOf(b) || (a % 2 === 1 ? 0 : 1) - (b % 2 === 1 ? 0 : 1) || a - b);
  const next = new Int32Array(entryCount).fill(NONE);
  const prev = new Int32Array(entryCount).fill(NONE);
  let last = 0;
  for (const entry of order) {
    next[last] = entry;
    prev[entry] = last;
    last = entry;
  }
  const lift = (call: number): void => {
    const ret = call + 1;
    next[prev[call] as number] = next[call] as number;
    if (next[call] !== NONE) prev[next[call] as number] = prev[call] as number;
    next[prev[ret] as number] = next[ret] as number;
    if (next[ret] !== NONE) prev[next[ret] as number] = prev[ret] as number;
  };
  const unlift = (call: number): void => {
    const ret = call + 1;
    if (next[ret] !== NONE) prev[next[ret] as number] = ret;
    next[prev[ret] as number] = ret;
    if (next[call] !== NONE) prev[next[call] as number] = call;
    next[prev[call] as number] = call;
  };

  const words = (n + 31) >>> 5;
  const bits = new Uint32Array(words);
  const { low: zLow, high: zHigh } = zobrist(n);
  let hashLow = 0;
  let hashHigh = 0;
  const cache = new Map<number, CacheEntry[]>();
  const cacheKey = (low: number, high: number, state: number): number =>
    ((high ^ Math.imul(state, 0x9e3779b1)) >>> 0) * 0x20_0000 + ((low ^ Math.imul(state, 0x85ebca6b)) & 0x1f_ffff);
  const sameBits = (a: Uint32Array): boolean => {
    for (let w = 0; w < words; w++) if (a[w] !== bits[w]) return false;
    return true;
  };
  /** Adds (current bits, state) to the cache; false if it was already there. */
  const remember = (state: number): boolean => {
    const key = cacheKey(hashLow, hashHigh, state);
    const bucket = cache.get(key);
    if (bucket !== undefined) {
      for (const entry of bucket) if (entry.state === state && sameBits(entry.bits)) return false;
      bucket.push({ bits: bits.slice(), state });
    } else {
      cache.set(key, [{ bits: bits.slice(), state }]);
    }
    return true;
  };
  const toggle = (op: number): void => {
    bits[op >>> 5] = (bits[op >>> 5] as number) ^ (1 << (op & 31));
    hashLow ^= zLow[op] as number;
    hashHigh ^= zHigh[op] as number;
  };

  const stackOp: number[] = [];
  const stackState: number[] = [];
  const initialStates = [...new Set(initial.map(intern))];
  const finals = new Set<number>();
  let state = STATE_NULL;
  let entry = NONE;
  let steps = 0;
  let deepest = { depth: -1, state: STATE_NULL, blocking: NONE, lastOps: [] as number[] };
  /** Undoes the last linearised operation; false when there is none left to undo. */
  const backtrack = (): boolean => {
    const undone = stackOp.pop();
    if (undone === undefined) return false;
    state = stackState.pop() as number;
    toggle(undone);
    const call = 2 * undone + 1;
    unlift(call);
    entry = next[call] as number;
    return true;
  };

  // The memo is shared by all initial values: a (set, value) pair has the same futures however
  // it was reached, and in collect mode they were all explored the first time.
  for (const start of initialStates) {
    state = start;
    entry = next[0] as number;
    for (;;) {
      if (next[0] === NONE) {
        if (!collectFinals) return { result: 'ok', explanation: `${n} operations linearizable`, steps, finals: [] };
        finals.add(state);
        if (!backtrack()) break;
        continue;
      }
      if (++steps > maxSteps) {
        return {
          result: 'unknown',
          explanation: `gave up after ${maxSteps} search steps (${n} operations; the deepest partial linearization had ${Math.max(deepest.depth, 0)}); split the history or raise maxStepsPerKey`,
          steps,
          finals: [],
        };
      }
      if (entry % 2 === 1) {
        const op = (entry - 1) >> 1;
        const after = step(op, state);
        if (after !== NONE) {
          toggle(op);
          if (remember(after)) {
            stackOp.push(op);
            stackState.push(state);
            state = after;
            lift(entry);
            entry = next[0] as number;
            continue;
          }
          toggle(op);
        }
        entry = next[entry] as number;
        continue;
      }
      // A return entry: its operation must already have taken effect. Backtrack.
      if (stackOp.length > deepest.depth) {
        deepest = { depth: stackOp.length, state, blocking: (entry - 2) >> 1, lastOps: stackOp.slice(-3) };
      }
      if (!backtrack()) break;
    }
  }
  if (finals.size > 0) {
    return { result: 'ok', explanation: `${n} operations linearizable`, steps, finals: [...finals].sort((a, b) => a - b).map((id) => values[id] ?? null) };
  }
  const from = initialStates.length === 1 && initialStates[0] === STATE_NULL ? null : initialStates.map((id) => values[id] ?? null);
  return { result: 'illegal', explanation: explain(ops, values, deepest, n, from), steps, finals: [] };
}

function describe(op: RegisterOperation): string {
  const when = `[${op.call}, ${op.completed ? op.ret : '∞'}]`;
  const outcome = op.completed ? '' : ' (outcome unknown)';
  switch (op.f) {
    case 'read':
      return `process ${op.process} read → ${JSON.stringify(op.output)} ${when}`;
    case 'write':
      return `process ${op.process} write ${JSON.stringify(op.input)}${outcome} ${when}`;
    case 'cas': {
      const [expected, value] = op.input as CasValue;
      return `process ${op.process} cas ${JSON.stringify(expected)} → ${JSON.stringify(value)}${outcome} ${when}`;
    }
  }
}

function explain(
  ops: readonly RegisterOperation[],
  values: ReadonlyArray<string | null>,
  deepest: { depth: number; state: number; blocking: number; lastOps: number[] },
  n: number,
  /** The register's possible values at the start, when not just null (a later segment). */
  from: ReadonlyArray<string | null> | null = null,
): string {
  const held = JSON.stringify(values[deepest.state] ?? null);
  const blocking = ops[deepest.blocking];
  const lastOps = deepest.lastOps.map((i) => describe(ops[i] as RegisterOperation));
  const prefix =
    deepest.depth === 0
      ? `no operation can be linearized first (the register starts as ${from === null ? 'null' : `one of ${JSON.stringify(from)}`})`
      : `at most ${deepest.depth} of ${n} operations can be linearized, ending with ${lastOps.join('; ')}, leaving the register at ${held}`;
  return blocking === undefined
    ? `not linearizable: ${prefix}`
    : `not linearizable: ${prefix}; then ${describe(blocking)} had to take effect before it returned, but no order of the pending operations allows it`;
}
