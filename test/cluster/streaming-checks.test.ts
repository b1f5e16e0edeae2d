/**
 * The running checks (verify/executed-monitor.ts, verify/linearizability-monitor.ts) reach the
 * batch checkers' verdicts on the same inputs, while holding only a bounded window.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { ClientRequest } from '../../cluster/protocol.ts';
import { initBlake3 } from '../../cluster/state/blake3.ts';
import { VerifiedStateMachine, type ExecutedOp } from '../../cluster/state/verified-state-machine.ts';
import { ExecutedMonitor } from '../../cluster/verify/executed-monitor.ts';
import type { HistoryEvent } from '../../cluster/verify/history.ts';
import { checkLinearizability, searchRegister } from '../../cluster/verify/linearizability.ts';
import { LinearizabilityMonitor } from '../../cluster/verify/linearizability-monitor.ts';
import { checkExactlyOnce, checkPerKeyOrder, checkTotalOrder, type NodeLog } from '../../cluster/verify/safety.ts';
import { ValidationError } from '../../core/errors.ts';
import { createRng, type Rng } from '../../core/rng.ts';
import { generatedHistory, history } from './history-fixtures.ts';

beforeAll(async () => {
  await initBlake3();
});

function monitored(events: readonly HistoryEvent[], minSegmentOps = 1): { report: ReturnType<LinearizabilityMonitor['finish']>; peak: number } {
  const monitor = new LinearizabilityMonitor({ minSegmentOps });
  for (const event of events) monitor.observe(event);
  return { report: monitor.finish(), peak: monitor.peakSegmentOps };
}

describe('searchRegister', () => {
  it('collects every value the register can end with', () => {
    // Two concurrent writes: either may be last.
    const ops = [
      { process: 0, f: 'write' as const, input: 'a', output: null, completed: true, call: 0, ret: 10 },
      { process: 1, f: 'write' as const, input: 'b', output: null, completed: true, call: 1, ret: 9 },
    ];
    expect(searchRegister(ops, [null], 1_000, true).finals).toEqual(['a', 'b']);
    // A read from a later segment's start values picks which ones remain possible.
    const read = [{ process: 2, f: 'read' as const, input: null, output: 'b', completed: true, call: 20, ret: 21 }];
    expect(searchRegister(read, ['a', 'b'], 1_000, true)).toMatchObject({ result: 'ok', finals: ['b'] });
    const bad = searchRegister([{ ...read[0]!, output: 'c' }], ['a', 'b'], 1_000, true);
    expect(bad.result).toBe('illegal');
    expect(bad.explanation).toContain('one of ["a","b"]');
  });
});

describe('LinearizabilityMonitor', () => {
  it('agrees with the batch checker on generated histories and on each with one read mutated', () => {
    let illegal = 0;
    for (let seed = 0; seed < 60; seed++) {
      const rng = createRng(`monitor-${seed}`);
      // Odd seeds: no unknown outcomes, so keys fall quiet often and the history is cut into many segments.
      const events = seed % 2 === 0 ? generatedHistory(rng, 150) : generatedHistory(rng, 400, { unknownOutcomes: false });
      const batch = checkLinearizability(events);
      const running = monitored(events).report;
      expect(running.result, `seed ${seed}: ${running.explanation}`).toBe(batch.result);
      expect(batch.result).toBe('ok');
      expect(running.operations).toBe(batch.operations);
      expect(running.keysChecked).toBe(batch.keysChecked);

      const reads = events.flatMap((e, i) => (e.type === 'ok' && e.f === 'read' ? [i] : []));
      if (reads.length === 0) continue;
      const target = reads[rng.int(reads.length)] as number;
      // A stale value (one that was written, not a made-up one), so the search has real work.
      const written = events.filter((e) => e.type === 'invoke' && e.f === 'write' && e.key === events[target]?.key);
      const stale = written.length > 0 ? written[rng.int(written.length)]?.value : 'never-written';
      const broken = events.map((e, i) => (i === target ? { ...e, value: stale ?? null } : e));
      const brokenBatch = checkLinearizability(broken);
      const brokenRunning = monitored(broken).report;
      expect(brokenRunning.result, `seed ${seed} mutated`).toBe(brokenBatch.result);
      if (brokenBatch.result === 'illegal') {
        illegal++;
        expect(brokenRunning.key).toBe(brokenBatch.key);
      }
    }
    expect(illegal).toBeGreaterThan(20);
  });

  it('holds only the open segment of a long history, not the whole of it', () => {
    const specs = [];
    // 2,000 rounds of two overlapping writes then a read that sees the second: quiet between rounds.
    for (let round = 0; round < 2_000; round++) {
      const t = round * 100;
      specs.push({ p: 0, f: 'write' as const, in: `a${round}`, call: t, ret: t + 10 });
      specs.push({ p: 1, f: 'write' as const, in: `b${round}`, call: t + 1, ret: t + 11 });
      specs.push({ p: 2, f: 'read' as const, out: round % 2 === 0 ? `a${round}` : `b${round}`, call: t + 20, ret: t + 21 });
    }
    const events = history(specs);
    const { report, peak } = monitored(events, 32);
    expect(report).toMatchObject({ result: 'ok', operations: 6_000 });
    expect(peak).toBeLessThan(40);
    expect(checkLinearizability(events).result).toBe('ok');
  });

  it('does not cut where a call and a return share a time (they may be ordered either way)', () => {
    // The read returns at 10 and the write is called at 10: the read may come after the write.
    const events = history([
      { p: 0, f: 'write', in: 'a', call: 0, ret: 5 },
      { p: 1, f: 'read', out: 'b', call: 6, ret: 10 },
      { p: 2, f: 'write', in: 'b', call: 10, ret: 12 },
    ]);
    expect(checkLinearizability(events).result).toBe('ok');
    expect(monitored(events).report.result).toBe('ok');
  });

  it('rejects malformed histories as it reads them', () => {
    const monitor = new LinearizabilityMonitor();
    expect(() => monitor.observe({ process: 1, type: 'ok', f: 'read', key: 'x', value: null, time: 1 })).toThrow(ValidationError);
    const twice = new LinearizabilityMonitor();
    twice.observe({ process: 1, type: 'invoke', f: 'write', key: 'x', value: 'a', time: 1 });
    expect(() => twice.observe({ process: 1, type: 'invoke', f: 'write', key: 'x', value: 'b', time: 2 })).toThrow(/outstanding/);
  });
});

function request(clientId: number, requestId: number, key: string, value?: string): ClientRequest {
  return { clientId, requestId, op: value === undefined ? { kind: 'read', key } : { kind: 'write', key, value } };
}

/** Runs requests on a machine that reports executions and restores to the monitor as they happen. */
class Replica {
  readonly events: Array<{ kind: 'op'; op: ExecutedOp } | { kind: 'restore'; count: number }> = [];
  readonly sm = new VerifiedStateMachine({
    onExecute: (op) => this.events.push({ kind: 'op', op }),
    onRestore: (count) => this.events.push({ kind: 'restore', count }),
  });
  run(requests: readonly ClientRequest[]): this {
    for (const r of requests) this.sm.executeRequest(r);
    return this;
  }
}

/** Feeds several replicas' executions to a monitor in a random interleaving. */
function monitorOf(replicas: ReadonlyArray<readonly [number, Replica]>, totalOrder: boolean, rng: Rng, windowPositions?: number): ExecutedMonitor {
  const monitor = new ExecutedMonitor({ totalOrder, nodes: replicas.map(([node]) => node), ...(windowPositions !== undefined && { windowPositions }) });
  const cursors = replicas.map(() => 0);
  for (;;) {
    const live = replicas.flatMap(([, r], i) => ((cursors[i] as number) < r.events.length ? [i] : []));
    if (live.length === 0) return monitor;
    const pick = live[rng.int(live.length)] as number;
    const [node, replica] = replicas[pick]!;
    const event = replica.events[cursors[pick] as number]!;
    cursors[pick] = (cursors[pick] as number) + 1;
    if (event.kind === 'op') monitor.executed(node, event.op);
    else monitor.restored(node, event.count);
  }
}

function batchKinds(logs: NodeLog[], totalOrder: boolean): string[] {
  return [...new Set([...checkExactlyOnce(logs), ...(totalOrder ? checkTotalOrder(logs) : []), ...checkPerKeyOrder(logs)].map((v) => v.kind))].sort();
}

function randomRequests(rng: Rng, count: number, from = 0): ClientRequest[] {
  return Array.from({ length: count }, (_, i) => request(rng.int(4), from + i, `k${rng.int(5)}`, rng.int(3) === 0 ? undefined : `v${rng.int(10)}`));
}

describe('ExecutedMonitor', () => {
  it('finds the kinds of violation the batch checks find, on agreeing and on broken logs', () => {
    const mutations = ['none', 'swap', 'duplicate', 'corrupt', 'prefix'] as const;
    for (let seed = 0; seed < 40; seed++) {
      const rng = createRng(`executed-${seed}`);
      const requests = randomRequests(rng, 300);
      const mutation = mutations[seed % mutations.length]!;
      let other = requests;
      if (mutation === 'swap') {
        const i = 50 + rng.int(200);
        other = [...requests];
        [other[i], other[i + 1]] = [other[i + 1]!, other[i]!];
      } else if (mutation === 'duplicate') {
        const i = rng.int(250);
        other = [...requests.slice(0, 260), requests[i]!, ...requests.slice(260)];
      } else if (mutation === 'prefix') {
        other = requests.slice(0, 200);
      }
      const a = new Replica().run(requests);
      const b = new Replica();
      if (mutation === 'corrupt') {
        b.run(requests.slice(0, 100));
        b.sm.corrupt(createRng(seed));
        b.run(requests.slice(100));
      } else {
        b.run(other);
      }
      const c = new Replica().run(requests.slice(0, 150 + rng.int(150)));
      for (const totalOrder of [true, false]) {
        const logs: NodeLog[] = [
          { node: 0, log: a.sm.executedLog() },
          { node: 1, log: b.sm.executedLog() },
          { node: 2, log: c.sm.executedLog() },
        ];
        const expected = batchKinds(logs, totalOrder);
        const monitor = monitorOf([[0, a], [1, b], [2, c]], totalOrder, rng);
        const found = [...new Set(monitor.violations().map((v) => v.kind))].sort();
        expect(found, `seed ${seed} ${mutation} totalOrder=${totalOrder}`).toEqual(expected);
        if (mutation === 'none' || mutation === 'prefix') expect(found).toEqual([]);
        expect(monitor.summary().lateUnchecked).toBe(0);
      }
    }
  });

  it('skips holes from a state transfer, and stops per-key order after the first one, like the batch check', () => {
    const rng = createRng('holes');
    const requests = randomRequests(rng, 200);
    const leader = new Replica().run(requests.slice(0, 150));
    const lagging = new Replica().run(requests.slice(0, 20));
    lagging.sm.restore(leader.sm.snapshot());
    lagging.run(requests.slice(150));
    leader.run(requests.slice(150));
    const monitor = monitorOf([[0, leader], [1, lagging]], true, rng);
    expect(monitor.violations()).toEqual([]);
    expect(checkTotalOrder([{ node: 0, log: leader.sm.executedLog() }, { node: 1, log: lagging.sm.executedLog() }])).toEqual([]);
  });

  it('names the request executed twice and where', () => {
    const r = new Replica().run([request(1, 1, 'x', 'a'), request(2, 1, 'x', 'b'), request(1, 1, 'x', 'a')]);
    const monitor = monitorOf([[4, r]], false, createRng(1));
    expect(monitor.violations()).toEqual([expect.objectContaining({ kind: 'duplicate-execution', node: 4, position: 2, otherPosition: 0 })]);
    expect(monitor.violations()[0]?.message).toContain('client 1 request 1 twice');
  });

  it('keeps a bounded window: memory does not grow with the log, and late executions are counted, not compared', () => {
    const rng = createRng('window');
    const requests = randomRequests(rng, 2_000);
    const fast = new Replica().run(requests);
    const slow = new Replica().run(requests);
    const monitor = new ExecutedMonitor({ totalOrder: true, nodes: [0, 1], windowPositions: 100 });
    for (const e of fast.events) if (e.kind === 'op') monitor.executed(0, e.op);
    for (const e of slow.events) if (e.kind === 'op') monitor.executed(1, e.op);
    expect(monitor.violations()).toEqual([]);
    // node 1 ran 2,000 positions behind: only the last 100 could still be compared
    expect(monitor.summary().lateUnchecked).toBeGreaterThan(1_500);
    expect(monitor.summary().executions).toBe(4_000);
  });

  it('ignores nodes it was not asked to check', () => {
    const a = new Replica().run([request(1, 1, 'x', 'a')]);
    const b = new Replica().run([request(1, 2, 'x', 'b')]);
    const monitor = monitorOf([[0, a], [3, b]], true, createRng(2));
    expect(monitor.violations().length).toBeGreaterThan(0);
    const only = new ExecutedMonitor({ totalOrder: true, nodes: [0] });
    for (const e of a.events) if (e.kind === 'op') only.executed(0, e.op);
    for (const e of b.events) if (e.kind === 'op') only.executed(3, e.op);
    expect(only.violations()).toEqual([]);
  });
});
