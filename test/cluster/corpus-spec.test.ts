/**
 * Corpus specifications: bad input is named field by field, and the committed splits
 * (training/corpus/*.yaml) are what they claim — disjoint seeds, a test split holding families
 * and load levels absent from train, and a calibration split with >= 10^4 fault-free 100 ms
 * windows per protocol.
 */
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../core/errors.ts';
import { loadCorpusSpecFile, parseCorpusSpec, seedsOf, validateCorpusSpec, type CorpusSpec } from '../../cluster/chaos/corpus-spec.ts';
import { planCorpus, summarizePlan } from '../../cluster/chaos/generate.ts';
import { TINY_SPEC } from '../support/corpus.ts';

const CORPUS_DIR = resolve(import.meta.dirname, '../../training/corpus');
const load = (name: string): CorpusSpec => loadCorpusSpecFile(join(CORPUS_DIR, `${name}.yaml`));

function fieldErrorsOf(input: unknown): Record<string, string> {
  try {
    validateCorpusSpec(input, 'test');
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).code).toBe('VALIDATION_FAILED');
    expect((error as ValidationError).message).toMatch(/^corpus spec test is invalid: /);
    return Object.fromEntries((error as ValidationError).fieldErrors.map((e) => [e.path, e.message]));
  }
  throw new Error('expected the spec to be rejected');
}

describe('corpus spec validation', () => {
  it('parses ranges and single values, with defaults', () => {
    const spec = validateCorpusSpec(TINY_SPEC);
    expect(spec.episodes.count).toEqual({ min: 2, max: 2 });
    expect(spec.loads[0]!.cas_share).toEqual({ min: 0, max: 0 });
    expect(spec.noise.latency_us).toEqual({ min: 300, max: 300 });
    expect(spec.noise.jitter).toEqual({ min: 0.2, max: 0.4 });
    expect(spec.within_fault_model).toBe(true);
    expect(seedsOf(spec)).toEqual([7, 8]);
    expect(seedsOf(validateCorpusSpec({ ...TINY_SPEC, seeds: [5, 3, 11] }))).toEqual([5, 3, 11]);
    expect(parseCorpusSpec(JSON.stringify(TINY_SPEC))).toEqual(spec);
    // A validated spec (as corpus.json records it) validates again to itself.
    expect(validateCorpusSpec(JSON.parse(JSON.stringify(spec)))).toEqual(spec);
  });

  it('names every bad field and the reason', () => {
    const errors = fieldErrorsOf({
      ...TINY_SPEC,
      protocols: ['pbft', 'raft'],
      seeds: { base: 1 },
      fault_free_share: 1.5,
      episodes: { ...TINY_SPEC.episodes, duration_ms: [900, 300], surprise: 1 },
      families: [
        { name: 'a', faults: [{ kind: 'drop', rate: [0.1, 2] }] },
        { name: 'b', faults: [{ kind: 'meteor' }] },
        { name: 'c', faults: [{ kind: 'crash', target: 'all' }] },
        { name: 'a', faults: [{ kind: 'delay', target: 'link' }] },
      ],
      loads: [{ name: 'l', clients: 0, think_ms: [1, 2], keys: [4, 8], read_share: [0.8, 0.9], cas_share: 0.3 }],
    });
    expect(errors['protocols.1']).toMatch(/expected one of pbft, epaxos/);
    expect(errors['seeds.count']).toBe('is required');
    expect(errors['fault_free_share']).toMatch(/<= 1/);
    expect(errors['episodes.duration_ms']).toMatch(/min must be <= max/);
    expect(errors['episodes.surprise']).toMatch(/unknown field/);
    expect(errors['families.0.faults.0.rate.1']).toMatch(/<= 1/);
    expect(errors['families.1.faults.0.kind']).toMatch(/expected one of crash, partition/);
    expect(errors['families.2.faults.0.target']).toMatch(/expected one of faulty/);
    expect(errors['families.3.faults.0.delay_ms']).toBe('is required');
    expect(errors['loads.0.clients']).toMatch(/>= 1/);
  });

  it('checks the rules between fields', () => {
    const tooShort = fieldErrorsOf({ ...TINY_SPEC, duration_ms: 1500 });
    expect(tooShort['duration_ms']).toMatch(/cannot hold one episode: .* = 1800 ms/);
    const rules = fieldErrorsOf({
      ...TINY_SPEC,
      nodes: { pbft: 5, epaxos: 4 },
      seeds: [3, 4, 3],
      episodes: { ...TINY_SPEC.episodes, recovery_ms: 900 },
      families: [...TINY_SPEC.families, { name: 'crash', protocols: ['epaxos'], faults: [{ kind: 'silent' }] }],
      loads: [{ name: 'l', clients: 1, think_ms: 1, keys: 4, read_share: [0.5, 0.9], cas_share: [0, 0.2] }],
    });
    expect(rules['nodes.pbft']).toMatch(/3f\+1/);
    expect(rules['nodes.epaxos']).toMatch(/2f\+1/);
    expect(rules['seeds.2']).toMatch(/seed 3 is listed twice/);
    expect(rules['episodes.recovery_ms']).toMatch(/<= gap_ms_min/);
    expect(rules['families.3.name']).toMatch(/used twice/);
    expect(rules['loads.0.cas_share']).toMatch(/writes are the rest/);
  });

  it('checks clock faults and leader targets', () => {
    const errors = fieldErrorsOf({
      ...TINY_SPEC,
      families: [
        ...TINY_SPEC.families,
        { name: 'no-clock', faults: [{ kind: 'clock_skew', skew_ms: [0, 100] }] },
        { name: 'eq', faults: [{ kind: 'equivocation', target: 'leader' }] },
      ],
    });
    expect(errors['families.3.faults.0.drift_ppm']).toMatch(/needs skew_ms or drift_ppm with a minimum above 0/);
    // Beyond EPaxos's fault model, so left out of its runs: allowed...
    expect(errors['families.4.faults.0.target']).toBeUndefined();
    // ...but not when the spec takes EPaxos beyond its model.
    const beyond = fieldErrorsOf({ ...TINY_SPEC, within_fault_model: false, families: [{ name: 'eq', faults: [{ kind: 'equivocation', target: 'leader' }] }] });
    expect(beyond['families.0.faults.0.target']).toMatch(/EPaxos has no single leader/);
  });

  it('refuses a faulty corpus with no family a protocol tolerates', () => {
    const errors = fieldErrorsOf({ ...TINY_SPEC, families: [{ name: 'eq', faults: [{ kind: 'equivocation' }] }] });
    expect(errors['families']).toMatch(/no family applies to epaxos within its fault model/);
    // Beyond the fault model on purpose: allowed when the spec says so.
    expect(() => validateCorpusSpec({ ...TINY_SPEC, within_fault_model: false, families: [{ name: 'eq', faults: [{ kind: 'equivocation' }] }] })).not.toThrow();
  });

  it('applies a --duration-ms override before validating it', () => {
    expect(validateCorpusSpec(TINY_SPEC, 'x', { durationMs: 9000 }).duration_ms).toBe(9000);
    expect(() => validateCorpusSpec(TINY_SPEC, 'x', { durationMs: 1000 })).toThrow(/duration_ms: 1000 ms cannot hold one episode/);
  });

  it('says when the file is not YAML or cannot be read', () => {
    expect(() => parseCorpusSpec('name: [unclosed', 'broken.yaml')).toThrow(/corpus spec broken.yaml is invalid: \(root\): not valid YAML/);
    expect(() => loadCorpusSpecFile('/nonexistent/spec.yaml')).toThrow(/cannot be read/);
  });
});

describe('the committed corpus splits', () => {
  const train = load('train');
  const calibration = load('calibration');
  const test = load('test');

  it('use disjoint seeds', () => {
    const sets = [train, calibration, test].map((spec) => new Set(seedsOf(spec)));
    for (let a = 0; a < sets.length; a++) {
      for (let b = a + 1; b < sets.length; b++) expect([...sets[a]!].filter((seed) => sets[b]!.has(seed))).toEqual([]);
    }
  });

  it('calibrate on the distribution trained on: the same families, loads, noise and episode timing', () => {
    expect(calibration.families).toEqual(train.families);
    expect(calibration.loads).toEqual(train.loads);
    expect(calibration.noise).toEqual(train.noise);
    expect(calibration.episodes).toEqual(train.episodes);
  });

  it('test what train never showed: held-out families and load levels outside train ranges', () => {
    const trainFamilies = new Set(train.families.map((f) => f.name));
    const heldOut = test.families.filter((f) => !trainFamilies.has(f.name)).map((f) => f.name);
    expect(heldOut).toEqual(['slow-link', 'crash-amnesia', 'crash-during-loss']);
    // Every train family is in test, unchanged, so seen and held-out families can be scored side by side.
    for (const family of train.families) expect(test.families.find((f) => f.name === family.name)).toEqual(family);
    const maxClients = Math.max(...train.loads.map((l) => l.clients.max));
    const minThink = Math.min(...train.loads.map((l) => l.think_ms.min));
    const maxThink = Math.max(...train.loads.map((l) => l.think_ms.max));
    const heavy = test.loads.find((l) => l.name === 'heavy')!;
    const sparse = test.loads.find((l) => l.name === 'sparse')!;
    expect(heavy.clients.min).toBeGreaterThan(maxClients);
    expect(heavy.think_ms.max).toBeLessThan(minThink);
    expect(sparse.think_ms.min).toBeGreaterThan(maxThink);
    // The held-out families and levels are actually drawn, for both protocols.
    const runs = planCorpus(test);
    for (const protocol of test.protocols) {
      const families = new Set(runs.filter((r) => r.protocol === protocol).flatMap((r) => r.labels.families));
      expect(families.has('slow-link')).toBe(true);
      expect(families.has('crash-during-loss')).toBe(true);
      expect(families.has('crash-amnesia')).toBe(protocol === 'pbft'); // beyond EPaxos's fault model
      const levels = new Set(runs.filter((r) => r.protocol === protocol).map((r) => r.labels.load.level));
      expect(levels.has('heavy') && levels.has('sparse')).toBe(true);
    }
  });

  it('size calibration for >= 10^4 fault-free 100 ms windows per protocol, from its fault-free runs alone', () => {
    const plan = summarizePlan(planCorpus(calibration));
    for (const protocol of calibration.protocols) {
      expect(plan[protocol]!.normal_windows_fault_free_runs).toBeGreaterThanOrEqual(10_000);
      expect(plan[protocol]!.normal_windows).toBeGreaterThan(plan[protocol]!.normal_windows_fault_free_runs);
    }
    // 28 fault-free 10 s runs: 4 nodes × 100 windows (PBFT), 5 × 100 (EPaxos).
    expect(plan.pbft!.normal_windows_fault_free_runs).toBe(11_200);
    expect(plan.epaxos!.normal_windows_fault_free_runs).toBe(14_000);
  });
});
