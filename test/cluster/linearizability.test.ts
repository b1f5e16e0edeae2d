import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  HistoryRecorder,
  formatHistory,
  parseHistory,
  readHistoryFile,
  writeHistoryFile,
  type HistoryEvent,
  type HistoryValue,
} from '../../cluster/verify/history.ts';
import { checkLinearizability } from '../../cluster/verify/linearizability.ts';
import { ValidationError } from '../../core/errors.ts';
import { createRng } from '../../core/rng.ts';
import { generatedHistory, history, type Spec } from './history-fixtures.ts';


const check = (specs: readonly Spec[]) => checkLinearizability(history(specs));

describe('linearizability: crafted histories', () => {
  it('accepts a sequential history and an empty one', () => {
    expect(check([])).toMatchObject({ ok: true, result: 'ok' });
    const report = check([
      { p: 0, f: 'read', out: null, call: 0, ret: 1 },
      { p: 0, f: 'write', in: 'a', call: 2, ret: 3 },
      { p: 1, f: 'read', out: 'a', call: 4, ret: 5 },
      { p: 1, f: 'cas', in: ['a', 'b'], call: 6, ret: 7 },
      { p: 0, f: 'read', out: 'b', call: 8, ret: 9 },
    ]);
    expect(report).toMatchObject({ ok: true, result: 'ok', operations: 5, keysChecked: 1 });
  });

  it('rejects a stale read, and explains it', () => {
    const report = check([
      { p: 0, f: 'write', in: '1', call: 0, ret: 10 },
      { p: 0, f: 'write', in: '2', call: 20, ret: 30 },
      { p: 1, f: 'read', out: '1', call: 40, ret: 50 },
    ]);
    expect(report).toMatchObject({ ok: false, result: 'illegal', key: 'x' });
    expect(report.explanation).toContain('process 1 read → "1" [40, 50]');
    expect(report.explanation).toContain('leaving the register at "2"');
  });

  it('rejects reading a value nobody wrote, and null after a completed write', () => {
    expect(check([{ p: 0, f: 'read', out: 'ghost', call: 0, ret: 1 }]).result).toBe('illegal');
    expect(
      check([
        { p: 0, f: 'write', in: '1', call: 0, ret: 10 },
        { p: 1, f: 'read', out: null, call: 11, ret: 12 },
      ]).result,
    ).toBe('illegal');
  });

  it('accepts concurrent writes seen in either order, but not an order that flips back', () => {
    const writes: Spec[] = [
      { p: 0, f: 'write', in: '1', call: 0, ret: 100 },
      { p: 1, f: 'write', in: '2', call: 10, ret: 90 },
    ];
    expect(check([...writes, { p: 2, f: 'read', out: '1', call: 110, ret: 120 }]).ok).toBe(true);
    expect(check([...writes, { p: 2, f: 'read', out: '2', call: 110, ret: 120 }]).ok).toBe(true);
    // during the writes, the register may go null → 2 → 1 or null → 1 → 2
    expect(
      check([...writes, { p: 2, f: 'read', out: '2', call: 20, ret: 30 }, { p: 2, f: 'read', out: '1', call: 40, ret: 50 }]).ok,
    ).toBe(true);
    expect(
      check([...writes, { p: 2, f: 'read', out: '1', call: 20, ret: 30 }, { p: 2, f: 'read', out: '2', call: 40, ret: 50 }]).ok,
    ).toBe(true);
    // but never back again
    expect(
      check([
        ...writes,
        { p: 2, f: 'read', out: '1', call: 20, ret: 30 },
        { p: 2, f: 'read', out: '2', call: 40, ret: 50 },
        { p: 2, f: 'read', out: '1', call: 95, ret: 99 },
      ]).result,
    ).toBe('illegal');
    expect(
      check([...writes, { p: 2, f: 'read', out: '2', call: 110, ret: 120 }, { p: 3, f: 'read', out: '1', call: 130, ret: 140 }]).result,
    ).toBe('illegal');
  });

  it('treats equal timestamps as concurrent', () => {
    expect(
      check([
        { p: 0, f: 'write', in: '1', call: 0, ret: 10 },
        { p: 1, f: 'read', out: null, call: 10, ret: 20 },
      ]).ok,
    ).toBe(true);
  });

  it('rejects a lost write: two cas from the same expected value both applied', () => {
    expect(
      check([
        { p: 0, f: 'cas', in: [null, 'a'], call: 0, ret: 10 },
        { p: 1, f: 'cas', in: [null, 'b'], call: 5, ret: 15 },
      ]).result,
    ).toBe('illegal');
    // one applied, the other reported as not applied (fail): fine
    expect(
      check([
        { p: 0, f: 'cas', in: [null, 'a'], call: 0, ret: 10 },
        { p: 1, f: 'cas', in: [null, 'b'], call: 5, ret: 15, type: 'fail' },
        { p: 1, f: 'read', out: 'a', call: 20, ret: 25 },
      ]).ok,
    ).toBe(true);
    // a write acknowledged and then overwritten by nobody, yet gone
    expect(
      check([
        { p: 0, f: 'write', in: 'a', call: 0, ret: 10 },
        { p: 1, f: 'write', in: 'b', call: 12, ret: 20 },
        { p: 0, f: 'read', out: 'a', call: 30, ret: 40 },
      ]).result,
    ).toBe('illegal');
  });

  it('rejects cas anomalies', () => {
    // applied against a value the register never held
    expect(check([{ p: 0, f: 'cas', in: ['a', 'b'], call: 0, ret: 1 }]).result).toBe('illegal');
    // applied, yet a later read sees the old value
    expect(
      check([
        { p: 0, f: 'write', in: 'a', call: 0, ret: 1 },
        { p: 0, f: 'cas', in: ['a', 'b'], call: 2, ret: 3 },
        { p: 1, f: 'read', out: 'a', call: 4, ret: 5 },
      ]).result,
    ).toBe('illegal');
    // a cas reported as failed must have had no effect
    expect(
      check([
        { p: 0, f: 'write', in: 'a', call: 0, ret: 1 },
        { p: 0, f: 'cas', in: ['a', 'b'], call: 2, ret: 3, type: 'fail' },
        { p: 1, f: 'read', out: 'b', call: 4, ret: 5 },
      ]).result,
    ).toBe('illegal');
    // chains of cas in the only possible order
    expect(
      check([
        { p: 0, f: 'cas', in: ['b', 'c'], call: 0, ret: 50 },
        { p: 1, f: 'cas', in: ['a', 'b'], call: 5, ret: 45 },
        { p: 2, f: 'cas', in: [null, 'a'], call: 10, ret: 40 },
        { p: 3, f: 'read', out: 'c', call: 60, ret: 70 },
      ]).ok,
    ).toBe(true);
  });

  it('lets info operations take effect late or never, but not before they were invoked', () => {
    const infoWrite: Spec = { p: 0, f: 'write', in: '1', call: 0, ret: 5, type: 'info' };
    expect(check([infoWrite, { p: 1, f: 'read', out: '1', call: 1000, ret: 1001 }]).ok).toBe(true);
    expect(check([infoWrite, { p: 1, f: 'read', out: null, call: 1000, ret: 1001 }]).ok).toBe(true);
    // takes effect late: null, then 1, long after the info
    expect(
      check([infoWrite, { p: 1, f: 'read', out: null, call: 100, ret: 101 }, { p: 1, f: 'read', out: '1', call: 200, ret: 201 }]).ok,
    ).toBe(true);
    // but once visible it stays
    expect(
      check([infoWrite, { p: 1, f: 'read', out: '1', call: 100, ret: 101 }, { p: 1, f: 'read', out: null, call: 200, ret: 201 }]).result,
    ).toBe('illegal');
    // and it cannot act before its invocation
    expect(check([{ p: 1, f: 'read', out: '1', call: 0, ret: 10 }, { p: 0, f: 'write', in: '1', call: 20, ret: 30, type: 'info' }]).result).toBe(
      'illegal',
    );
    // never-completed invokes count as info; an info cas that cannot apply is a no-op
    expect(
      check([
        { p: 0, f: 'write', in: 'a', call: 0, ret: 1 },
        { p: 1, f: 'cas', in: ['z', 'q'], call: 2 },
        { p: 2, f: 'cas', in: ['a', 'b'], call: 3, ret: 4, type: 'info' },
        { p: 3, f: 'read', out: 'b', call: 10, ret: 11 },
        { p: 3, f: 'read', out: 'b', call: 12, ret: 13 },
      ]).ok,
    ).toBe(true);
    // an info read is ignored whatever it carries
    expect(check([{ p: 0, f: 'read', call: 0, ret: 1, type: 'info' }]).ok).toBe(true);
  });

  it('checks keys independently and names the bad one', () => {
    const report = check([
      { p: 0, f: 'write', in: '1', call: 0, ret: 1, key: 'a' },
      { p: 1, f: 'write', in: '1', call: 0, ret: 1, key: 'b' },
      { p: 0, f: 'read', out: '1', call: 2, ret: 3, key: 'a' },
      { p: 1, f: 'read', out: null, call: 2, ret: 3, key: 'b' },
    ]);
    expect(report).toMatchObject({ ok: false, result: 'illegal', key: 'b', keysChecked: 2 });
  });

  it('answers unknown instead of searching forever', () => {
    // many fully concurrent writes and a read of a value nobody wrote: the search must
    // try every subset before proving illegality
    const specs: Spec[] = [];
    for (let i = 0; i < 40; i++) specs.push({ p: i, f: 'write', in: `v${i}`, call: 0, ret: 1000 });
    specs.push({ p: 99, f: 'read', out: 'nobody', call: 500, ret: 501 });
    const report = checkLinearizability(history(specs), { maxStepsPerKey: 10_000 });
    expect(report).toMatchObject({ ok: false, result: 'unknown', key: 'x' });
    expect(report.explanation).toContain('gave up after 10000');
  });

  it('rejects malformed histories', () => {
    expect(() =>
      checkLinearizability([{ process: 1, type: 'ok', f: 'write', key: 'x', value: 'a', time: 1 }]),
    ).toThrow(ValidationError);
    expect(() =>
      checkLinearizability([
        { process: 1, type: 'invoke', f: 'write', key: 'x', value: 'a', time: 1 },
        { process: 1, type: 'invoke', f: 'write', key: 'x', value: 'b', time: 2 },
      ]),
    ).toThrow(/outstanding/);
  });
});

describe('linearizability: property tests', () => {
  it('accepts every history of a real sequential execution, rejects it with one read mutated', () => {
    let mutated = 0;
    for (let seed = 0; seed < 60; seed++) {
      const rng = createRng(seed);
      const events = generatedHistory(rng, 150);
      const report = checkLinearizability(events);
      expect(report, `seed ${seed}: ${report.explanation}`).toMatchObject({ ok: true, result: 'ok' });

      const reads = events.flatMap((e, i) => (e.type === 'ok' && e.f === 'read' ? [i] : []));
      if (reads.length === 0) continue;
      const target = reads[rng.int(reads.length)] as number;
      const broken = events.map((e, i) => (i === target ? { ...e, value: 'never-written' } : e));
      const brokenReport = checkLinearizability(broken);
      expect(brokenReport.result, `seed ${seed}`).toBe('illegal');
      expect(brokenReport.key).toBe(events[target]?.key);
      mutated++;
    }
    expect(mutated).toBeGreaterThan(50);
  });
});

describe('history files', () => {
  it('round-trips NDJSON in the Knossos/Porcupine shape', async () => {
    const events = generatedHistory(createRng(42), 60);
    const text = formatHistory(events);
    expect(text.split('\n')[0]).toMatch(/^\{"process":\d+,"type":"invoke","f":"(read|write|cas)","key":"k\d"/);
    expect(parseHistory(text)).toEqual(events);
    const dir = await mkdtemp(join(tmpdir(), 'lattice-history-'));
    try {
      const path = join(dir, 'history.ndjson');
      await writeHistoryFile(path, events);
      expect(await readHistoryFile(path)).toEqual(events);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reports bad lines with their line number', () => {
    const text = '{"process":1,"type":"invoke","f":"read","key":"k","time":1}\nnot json\n{"process":1,"type":"done","f":"read","key":"k","time":2}\n';
    expect(() => parseHistory(text)).toThrow(/line 2: not JSON.*line 3\.type/s);
  });

  it('records a run, moving a client to a new process after an unknown outcome', () => {
    const recorder = new HistoryRecorder();
    recorder.invoke(7, { kind: 'write', key: 'k', value: 'a' }, 1);
    recorder.complete(7, { value: 'a', applied: true }, 2);
    recorder.invoke(7, { kind: 'cas', key: 'k', expected: 'z', value: 'b' }, 3);
    recorder.complete(7, { value: 'a', applied: false }, 4);
    recorder.invoke(7, { kind: 'write', key: 'k', value: 'c' }, 5);
    recorder.complete(7, null, 6);
    recorder.invoke(7, { kind: 'read', key: 'k' }, 7);
    recorder.complete(7, { value: 'c', applied: true }, 8);
    const events = recorder.events();
    expect(events.map((e) => `${e.process}:${e.type}`)).toEqual([
      '0:invoke', '0:ok', '0:invoke', '0:fail', '0:invoke', '0:info', '1:invoke', '1:ok',
    ]);
    expect(events[2]?.value).toEqual(['z', 'b']);
    expect(events[7]).toEqual({ process: 1, type: 'ok', f: 'read', key: 'k', value: 'c', time: 8 });
    expect(checkLinearizability(events).ok).toBe(true);
    expect(() => recorder.complete(7, null, 9)).toThrow(ValidationError);
  });
});
