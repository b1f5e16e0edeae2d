/**
 * The corpus generator: a spec reproduces the same scenarios and traces from its seeds; episodes
 * are separated, with normal traffic before, between and after them — in the labels, and in the
 * labels the records carry; fault durations do not depend on the run's length; every run stays
 * within the fault model; loads and noise vary in fault-free runs too.
 */
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemorySink } from '../../core/sink.ts';
import { EPAXOS_BEYOND_KINDS, judgeFaultModel } from '../../cluster/chaos/fault-model.ts';
import { loadCorpusSpecFile, validateCorpusSpec } from '../../cluster/chaos/corpus-spec.ts';
import { runCorpus, simulationRunner } from '../../cluster/chaos/corpus-run.ts';
import { generateCorpusRun, isFaultFreePosition, normalWindowsOf, planCorpus, type CorpusRun } from '../../cluster/chaos/generate.ts';
import { SIM_EPOCH_US } from '../../cluster/sim/simulator.ts';
import { TINY_SPEC } from '../support/corpus.ts';

const train = loadCorpusSpecFile(join(resolve(import.meta.dirname, '../../training/corpus'), 'train.yaml'));
const tiny = validateCorpusSpec(TINY_SPEC);

describe('corpus generation', () => {
  it('reproduces the same scenarios from the same seeds, and other ones from other seeds', () => {
    expect(planCorpus(train)).toEqual(planCorpus(train));
    const first = planCorpus(tiny);
    expect(first.map((r) => `${r.protocol}/${r.seed}`)).toEqual(['pbft/7', 'epaxos/7', 'pbft/8', 'epaxos/8']);
    const shifted = planCorpus(validateCorpusSpec({ ...TINY_SPEC, seeds: { base: 8, count: 1 } }));
    // A run depends on its seed and its position (fault-free or not), not on the rest of the corpus...
    expect(generateCorpusRun(tiny, 'pbft', 8, 1)).toEqual(first[2]);
    // ...so other seeds give other scenarios.
    expect(shifted[0]!.scenario).not.toEqual(first[0]!.scenario);
  });

  it('runs the same corpus twice to the same trace hashes', async () => {
    const jobs = planCorpus(tiny);
    const once = await runCorpus(jobs, simulationRunner());
    const twice = await runCorpus(planCorpus(tiny), simulationRunner());
    expect(once.failed).toEqual([]);
    expect(once.outcomes.map((o) => o.trace_hash)).toEqual(twice.outcomes.map((o) => o.trace_hash));
    expect(new Set(once.outcomes.map((o) => o.trace_hash)).size).toBe(jobs.length);
    expect(once.census).toEqual(twice.census);
  }, 120_000);

  it('holds the fault-free share in every prefix of the seed list', () => {
    for (const share of [0, 0.2, 0.25, 0.5, 0.7, 1]) {
      for (const n of [1, 3, 10, 40]) {
        const faultFree = Array.from({ length: n }, (_, i) => isFaultFreePosition(i, share)).filter(Boolean).length;
        expect(faultFree).toBe(Math.max(0, Math.ceil(n * share - 1e-9)));
      }
    }
  });

  it('separates episodes: lead, gaps and tail of normal traffic, within the run', () => {
    const runs = planCorpus(train);
    const e = train.episodes;
    const faulty = runs.filter((r) => !r.labels.fault_free);
    expect(faulty.length).toBe(240);
    for (const run of faulty) {
      const episodes = run.labels.episodes;
      expect(episodes.length).toBeGreaterThanOrEqual(1);
      expect(episodes.length).toBeLessThanOrEqual(e.count.max);
      expect(episodes[0]!.start_ms).toBeGreaterThanOrEqual(e.lead_ms_min);
      for (let i = 1; i < episodes.length; i++) expect(episodes[i]!.start_ms - episodes[i - 1]!.end_ms).toBeGreaterThanOrEqual(e.gap_ms_min);
      expect(run.labels.duration_ms - episodes.at(-1)!.end_ms).toBeGreaterThanOrEqual(e.tail_ms_min);
      // Every fault lies inside its episode and ends on its own, well before the fault period does.
      for (const fault of run.scenario.faults) {
        const episode = episodes.find((x) => x.start_ms === fault.at_ms)!;
        expect(episode).toBeDefined();
        expect(fault.at_ms + fault.duration_ms!).toBeLessThanOrEqual(episode.end_ms);
      }
    }
    // Most runs hold more than one episode.
    expect(faulty.filter((r) => r.labels.episodes.length >= 2).length).toBeGreaterThan(faulty.length * 0.8);
  });

  it('draws fault durations independently of the run length', () => {
    const long = planCorpus(validateCorpusSpec({ ...train, seeds: { base: 100000, count: 30 }, duration_ms: 30_000 }));
    const short = planCorpus(train).slice(0, long.length);
    const durations = (runs: readonly CorpusRun[]) => runs.map((r) => r.labels.episodes.map((e) => e.end_ms - e.start_ms));
    // The same seed draws the same episodes; a longer run only has more room around them (the
    // short run may have had to drop a trailing one that did not fit).
    durations(short).forEach((inShort, i) => expect(durations(long)[i]!.slice(0, inShort.length)).toEqual(inShort));
    const longSpans = durations(long).flat();
    expect(Math.max(...longSpans)).toBeLessThanOrEqual(train.episodes.duration_ms.max);
  });

  it('stays within the fault model, and keeps Byzantine kinds EPaxos cannot tolerate out of EPaxos runs', () => {
    for (const run of planCorpus(train)) {
      const verdict = judgeFaultModel(run.protocol, run.scenario.nodes, run.scenario.faults);
      expect(verdict.beyondFaultModel, `${run.labels.run_id}: ${verdict.reasons.join('; ')}`).toBe(false);
      expect(run.labels.beyond_fault_model).toBe(false);
      if (run.protocol === 'epaxos') for (const fault of run.scenario.faults) expect(EPAXOS_BEYOND_KINDS.has(fault.kind)).toBe(false);
    }
  });

  it('varies load and background noise in fault-free runs too', () => {
    const normal = planCorpus(train).filter((r) => r.labels.fault_free);
    expect(normal.length).toBe(60);
    expect(new Set(normal.map((r) => r.labels.load.level))).toEqual(new Set(['light', 'moderate', 'busy']));
    expect(new Set(normal.map((r) => r.scenario.clients)).size).toBeGreaterThan(4);
    expect(normal.every((r) => r.scenario.faults.length === 0)).toBe(true);
    expect(normal.filter((r) => r.scenario.network.drop > 0).length).toBeGreaterThan(normal.length / 2);
    expect(new Set(normal.map((r) => r.scenario.network.jitter)).size).toBeGreaterThan(normal.length / 2);
    for (const r of normal) {
      const { read, write, cas } = r.scenario.workload;
      expect(read + write + cas).toBeCloseTo(1, 2);
      expect(r.scenario.network.drop).toBeLessThanOrEqual(0.002);
    }
  });

  it('counts planned normal windows per stretch, outside episodes and their recovery', () => {
    expect(normalWindowsOf(10_000, [], 500)).toBe(100);
    // [0, 1550) → 15 windows; [2000 + 500, 4000) → 15; [4500 + 500, 10000) → 50.
    expect(normalWindowsOf(10_000, [{ start_ms: 1550, end_ms: 2000 }, { start_ms: 4000, end_ms: 4500 }], 500)).toBe(80);
    const run = planCorpus(tiny)[2]!;
    expect(run.labels.planned_normal_windows).toBe(run.labels.nodes * normalWindowsOf(run.labels.duration_ms, run.labels.episodes, tiny.episodes.recovery_ms));
  });
});

describe('the records of a corpus run', () => {
  it('carry normal labels before, between and after the episodes, and the episode kinds inside them', async () => {
    const run = planCorpus(tiny).find((r) => r.protocol === 'pbft' && !r.labels.fault_free)!;
    expect(run.labels.episodes).toHaveLength(2);
    const memory = new MemorySink();
    const report = await runCorpus([run], simulationRunner({ sinkFor: () => memory }));
    expect(report.failed).toEqual([]);
    const at = (ms: number) => SIM_EPOCH_US + ms * 1000;
    const between = (from: number, to: number) => memory.records.filter((r) => r.ts_us >= at(from) && r.ts_us < at(to));
    const [first, second] = run.labels.episodes as [(typeof run.labels.episodes)[0], (typeof run.labels.episodes)[0]];
    const recovery = tiny.episodes.recovery_ms;
    const stretches = { before: between(0, first.start_ms), gap: between(first.end_ms + recovery, second.start_ms), after: between(second.end_ms + recovery, run.labels.duration_ms) };
    for (const [name, records] of Object.entries(stretches)) {
      expect(records.length, name).toBeGreaterThan(100);
      expect(records.filter((r) => r.faults.length > 0), name).toEqual([]);
      // Recovery (the `recovering` flag) may outlast recovery_ms, but normal traffic follows it.
      expect(records.filter((r) => !r.recovering).length, name).toBeGreaterThan(50);
    }
    // Clients keep submitting after the last episode: new requests arrive in the tail.
    expect(stretches.after.filter((r) => r.phase === 'request').length).toBeGreaterThan(10);
    for (const episode of run.labels.episodes) {
      const inside = between(episode.start_ms + 1, episode.end_ms - 1);
      expect(inside.length).toBeGreaterThan(0);
      for (const record of inside) for (const kind of episode.kinds) expect(record.faults).toContain(kind);
    }
  }, 60_000);

  it('aims an equivocation at the PBFT leader, and the records show it acting', async () => {
    const spec = validateCorpusSpec({ ...TINY_SPEC, protocols: ['pbft'], fault_free_share: 0, episodes: { ...TINY_SPEC.episodes, count: 1, duration_ms: 600 }, families: [{ name: 'equivocating-leader', faults: [{ kind: 'equivocation', target: 'leader' }] }] });
    const [run] = planCorpus(spec);
    expect(run!.scenario.faults).toMatchObject([{ kind: 'equivocation', nodes: 'leader' }]);
    expect(run!.labels.episodes[0]).toMatchObject({ family: 'equivocating-leader', kinds: ['equivocation'], nodes: [], leader: true });
    const memory = new MemorySink();
    const report = await runCorpus([run!], simulationRunner({ sinkFor: () => memory }));
    expect(report.failed).toEqual([]);
    const acting = memory.records.filter((r) => r.faults.includes('equivocation'));
    expect(acting.length).toBeGreaterThan(0);
    // The primary of view 0 is node 0: it is the one labelled.
    expect(new Set(acting.flatMap((r) => r.faulty_nodes))).toEqual(new Set([0]));
    expect(report.census.protocols.pbft!.labels.equivocation).toBeGreaterThan(0);
  }, 60_000);
});
