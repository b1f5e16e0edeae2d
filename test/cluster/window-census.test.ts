/**
 * The census of 100 ms windows per label: against a hand count on hand-written records, against
 * an independent count over a small run's records, with labels records may carry later
 * (`recovering`), merged across runs, and printed as a table.
 */
import { describe, expect, it } from 'vitest';
import { MemorySink } from '../../core/sink.ts';
import type { TraceRecord } from '../../core/trace-schema.ts';
import { validateCorpusSpec } from '../../cluster/chaos/corpus-spec.ts';
import { runCorpus, simulationRunner } from '../../cluster/chaos/corpus-run.ts';
import { planCorpus } from '../../cluster/chaos/generate.ts';
import { countingSink, formatCensus, labelsOf, mergeCensus, WindowCensus } from '../../cluster/chaos/window-census.ts';
import { TINY_SPEC } from '../support/corpus.ts';
import { makeRecord } from '../support/records.ts';

const T0 = 1_767_225_600_000_000; // a window boundary (2026-01-01T00:00:00Z)
let seq = 0;
const at = (node: number, ms: number, faults: TraceRecord['faults'] = [], extra: Record<string, unknown> = {}, protocol: TraceRecord['protocol'] = 'pbft'): TraceRecord =>
  ({ ...makeRecord({ node, node_seq: seq++, ts_us: T0 + ms * 1000, faults, protocol, phase: 'request' }), ...extra }) as TraceRecord;

describe('window census', () => {
  it('matches a hand count', async () => {
    const census = new WindowCensus();
    const inner = new MemorySink();
    const sink = countingSink(census, inner);
    await sink.write([
      // node 0, window 0: two normal records → one normal cell
      at(0, 10),
      at(0, 99.999),
      // node 0, window 1: normal then crash → one cell, labelled crash (not normal)
      at(0, 100),
      at(0, 150, ['crash']),
      // node 1, window 1: crash + drop in one record → counts under both
      at(1, 120, ['crash', 'drop']),
      // node 1, window 2: normal
      at(1, 250),
    ]);
    await sink.write([
      // node 2, window 3: drop only
      at(2, 399, ['drop']),
      // an EPaxos run: its own column
      at(0, 5, [], {}, 'epaxos'),
    ]);
    expect(inner.records).toHaveLength(8);
    expect(census.counts()).toEqual({
      window_ms: 100,
      protocols: {
        pbft: { cells: 5, labels: { normal: 2, crash: 2, drop: 2 } },
        epaxos: { cells: 1, labels: { normal: 1 } },
      },
    });
  });

  it('counts whatever labels records carry: a boolean flag such as `recovering`', () => {
    const recovering = at(3, 500, [], { recovering: true });
    expect(labelsOf(recovering)).toEqual(['recovering']);
    const census = new WindowCensus();
    census.observe(recovering);
    census.observe(at(3, 550));
    census.observe(at(3, 650));
    expect(census.counts().protocols.pbft).toEqual({ cells: 2, labels: { recovering: 1, normal: 1 } });
  });

  it('keeps runs apart, merges across runs, and refuses different widths', () => {
    const a = new WindowCensus();
    const b = new WindowCensus();
    a.observe({ ...at(0, 10), run_id: 'run-a' });
    a.observe({ ...at(0, 20), run_id: 'run-b' });
    b.observe({ ...at(0, 30, ['silent']), run_id: 'run-c' });
    expect(a.counts().protocols.pbft!.cells).toBe(2);
    expect(mergeCensus(a.counts(), b.counts()).protocols.pbft).toEqual({ cells: 3, labels: { normal: 2, silent: 1 } });
    expect(() => mergeCensus(a.counts(), new WindowCensus(1000).counts())).toThrow(/100 ms and 1000 ms/);
    expect(() => new WindowCensus(0)).toThrow(/positive integer/);
  });

  it('counts a small run as an independent count of its records does', async () => {
    const run = planCorpus(validateCorpusSpec(TINY_SPEC)).find((r) => r.protocol === 'pbft' && !r.labels.fault_free)!;
    const memory = new MemorySink();
    const report = await runCorpus([run], simulationRunner({ sinkFor: () => memory }));
    expect(report.failed).toEqual([]);
    // By hand: the cells of each label are the distinct (node, window) pairs of records carrying
    // it; normal cells are all cells less those holding any labelled record.
    const cell = (r: TraceRecord) => `${r.node}/${Math.floor(r.ts_us / 100_000)}`;
    const labels = (r: TraceRecord): string[] => [...r.faults, ...(r.recovering ? ['recovering'] : [])];
    const all = new Set(memory.records.map(cell));
    const labelled = new Set(memory.records.filter((r) => labels(r).length > 0).map(cell));
    const expected: Record<string, number> = { normal: all.size - labelled.size };
    for (const label of new Set(memory.records.flatMap(labels))) expected[label] = new Set(memory.records.filter((r) => labels(r).includes(label)).map(cell)).size;
    expect(report.census.protocols.pbft).toEqual({ cells: all.size, labels: expected });
    expect(Object.keys(expected).length).toBeGreaterThan(2);
    expect(expected.recovering).toBeGreaterThan(0); // the chaos engine's flag, counted as a label
    expect(report.outcomes[0]!.records).toBe(memory.records.length);
  }, 60_000);

  it('prints a table: normal first, one column per protocol, the cells last', () => {
    const census = new WindowCensus();
    census.observe(at(0, 10, ['partition']));
    census.observe(at(0, 110));
    census.observe(at(1, 10, [], {}, 'epaxos'));
    const lines = formatCensus(census.counts()).split('\n');
    expect(lines[0]).toMatch(/^100 ms windows per label/);
    expect(lines.slice(1).map((l) => l.split(/\s+/))).toEqual([
      ['label', 'epaxos', 'pbft'],
      ['normal', '1', '1'],
      ['partition', '0', '1'],
      ['(cells)', '1', '2'],
    ]);
  });
});
