/**
 * Client histories for the linearizability tests: crafted from operation intervals, or generated
 * from a real sequential execution stretched into a concurrent history.
 */
import type { HistoryEvent, HistoryValue } from '../../cluster/verify/history.ts';
import type { Rng } from '../../core/rng.ts';

export type Spec = {
  p: number;
  f: 'read' | 'write' | 'cas';
  /** write value, cas [expected, new] */
  in?: HistoryValue;
  /** read result */
  out?: string | null;
  call: number;
  /** undefined: never completes */
  ret?: number;
  type?: 'ok' | 'fail' | 'info';
  key?: string;
};

/** Builds a time-ordered history from operation intervals. */
export function history(specs: readonly Spec[]): HistoryEvent[] {
  const events: Array<HistoryEvent & { order: number }> = [];
  specs.forEach((s, i) => {
    const key = s.key ?? 'x';
    events.push(
      s.f === 'read'
        ? { process: s.p, type: 'invoke', f: 'read', key, time: s.call, order: 2 * i }
        : { process: s.p, type: 'invoke', f: s.f, key, value: s.in as HistoryValue, time: s.call, order: 2 * i },
    );
    if (s.ret === undefined) return;
    const type = s.type ?? 'ok';
    const value = s.f === 'read' ? (type === 'ok' ? (s.out ?? null) : undefined) : s.in;
    events.push(
      value === undefined
        ? { process: s.p, type, f: s.f, key, time: s.ret, order: 2 * i + 1 }
        : { process: s.p, type, f: s.f, key, value, time: s.ret, order: 2 * i + 1 },
    );
  });
  events.sort((a, b) => a.time - b.time || a.order - b.order);
  return events.map(({ order: _order, ...event }) => event);
}

/** A real sequential execution, stretched into a concurrent history with random intervals. */
export function generatedHistory(rng: Rng, operations: number, options: { unknownOutcomes?: boolean } = {}): HistoryEvent[] {
  const unknownOutcomes = options.unknownOutcomes ?? true;
  const store = new Map<string, string>();
  const specs: Spec[] = [];
  const freeAt: number[] = []; // process → time it is free again (Infinity: retired after info)
  const pickProcess = (call: number): number => {
    const free = freeAt.findIndex((t) => t < call);
    if (free >= 0 && rng.int(3) !== 0) return free;
    freeAt.push(0);
    return freeAt.length - 1;
  };
  for (let i = 0; i < operations; i++) {
    const point = 10 * (i + 1);
    const call = point - rng.int(60);
    let ret = point + 1 + rng.int(60);
    const key = `k${rng.int(3)}`;
    const current = store.get(key) ?? null;
    const p = pickProcess(call);
    const roll = rng.int(10);
    let spec: Spec;
    if (roll < 4) {
      spec = { p, key, f: 'read', out: current, call, ret };
    } else if (roll < 7) {
      const value = `v${i}`;
      store.set(key, value);
      spec = { p, key, f: 'write', in: value, call, ret };
    } else {
      const expected = rng.int(2) === 0 ? current : `v${rng.int(i + 1)}`;
      const value = `c${i}`;
      const applies = expected === current;
      if (applies) store.set(key, value);
      spec = { p, key, f: 'cas', in: [expected, value], call, ret, type: applies ? 'ok' : 'fail' };
    }
    // now and then the client never learns the outcome: it took effect, but reports info
    if (unknownOutcomes && spec.f !== 'read' && rng.int(12) === 0) {
      spec = rng.int(2) === 0 ? { ...spec, type: 'info' } : { ...spec, ret: undefined };
      ret = Number.POSITIVE_INFINITY;
    }
    freeAt[p] = ret;
    specs.push(spec);
    // and now and then a timed-out write that never took effect at all
    if (unknownOutcomes && rng.int(15) === 0) {
      const ghost = pickProcess(call);
      freeAt[ghost] = Number.POSITIVE_INFINITY;
      specs.push({ p: ghost, key, f: 'write', in: `ghost${i}`, call, ret: call + 5, type: 'info' });
    }
  }
  return history(specs);
}
