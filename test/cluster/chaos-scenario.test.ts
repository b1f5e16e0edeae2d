import { describe, expect, it } from 'vitest';
import { ScenarioError } from '../../core/errors.ts';
import { FAULT_KINDS } from '../../core/trace-schema.ts';
import { generateScenarios } from '../../cluster/chaos/generate.ts';
import { judgeFaultModel } from '../../cluster/chaos/fault-model.ts';
import { loadScenarioLibrary } from '../../cluster/chaos/library.ts';
import { parseScenario, validateScenario } from '../../cluster/chaos/scenario.ts';

function fieldErrorsOf(input: unknown): Record<string, string> {
  try {
    validateScenario(input, 'test');
  } catch (error) {
    expect(error).toBeInstanceOf(ScenarioError);
    expect((error as ScenarioError).code).toBe('SCENARIO_INVALID');
    return Object.fromEntries((error as ScenarioError).fieldErrors.map((e) => [e.path, e.message]));
  }
  throw new Error('expected the scenario to be rejected');
}

describe('scenario validation', () => {
  it('parses YAML and JSON with defaults', () => {
    const yaml = parseScenario('name: a\nprotocol: pbft\nnodes: 4\nduration_ms: 100\nfaults:\n  - { at_ms: 10, kind: drop, rate: 0.1 }\n');
    const json = parseScenario(JSON.stringify({ name: 'a', protocol: 'pbft', nodes: 4, duration_ms: 100, faults: [{ at_ms: 10, kind: 'drop', rate: 0.1 }] }));
    expect(json).toEqual(yaml);
    expect(yaml.clients).toBe(4);
    expect(yaml.workload.keys).toBe(8);
    expect(yaml.faults[0]).toEqual({ at_ms: 10, kind: 'drop', rate: 0.1 });
  });

  it('names every bad field', () => {
    const errors = fieldErrorsOf({
      name: 'bad',
      nodes: 4,
      duration_ms: 'long',
      clients: 0,
      network: { drop: 2 },
      faults: [
        { at_ms: 1, kind: 'drop', rate: 1.5 },
        { at_ms: 1, kind: 'crash' },
        { at_ms: 1, kind: 'meteor' },
        { at_ms: 1, kind: 'silent', nodes: [1], extra: true },
      ],
    });
    expect(errors['duration_ms']).toMatch(/number/);
    expect(errors['clients']).toMatch(/> 0/);
    expect(errors['network.drop']).toMatch(/<= 1/);
    expect(errors['faults.0.rate']).toMatch(/<= 1/);
    expect(errors['faults.1.nodes']).toBe('is required');
    expect(errors['faults.2.kind']).toMatch(/expected one of crash/);
    expect(errors['faults.3.extra']).toMatch(/unknown field/);
  });

  it('checks cross-field rules: node ids, replica counts per protocol, fault times', () => {
    const errors = fieldErrorsOf({ name: 'x', protocol: 'pbft', nodes: 5, duration_ms: 100, faults: [{ at_ms: 200, kind: 'crash', nodes: [7] }] });
    expect(errors['nodes']).toMatch(/3f\+1/);
    expect(errors['faults.0.at_ms']).toMatch(/before duration_ms/);
    expect(errors['faults.0.nodes.0']).toMatch(/does not exist/);
    expect(() => parseScenario('name: [unclosed', 'broken.yaml')).toThrow(ScenarioError);
  });
});

describe('crash with amnesia', () => {
  const crash = (amnesia: unknown) => ({ name: 'a', nodes: 4, duration_ms: 100, faults: [{ at_ms: 1, kind: 'crash', nodes: [0], amnesia }] });

  it('takes a boolean, and names the field otherwise', () => {
    expect(validateScenario(crash(true)).faults[0]).toEqual({ at_ms: 1, kind: 'crash', nodes: [0], amnesia: true });
    expect(fieldErrorsOf(crash('yes'))['faults.0.amnesia']).toMatch(/true or false/);
  });

  it('counts against f as a faulty node for PBFT, and is beyond the EPaxos model', () => {
    const faults = validateScenario(crash(true)).faults;
    const pbft = judgeFaultModel('pbft', 4, faults);
    expect(pbft).toMatchObject({ beyondFaultModel: false, byzantineNodes: [0], countedNodes: [0] });
    const epaxos = judgeFaultModel('epaxos', 5, faults);
    expect(epaxos.beyondFaultModel).toBe(true);
    expect(epaxos.reasons.join()).toMatch(/amnesia/);
    // A plain crash stays a crash: counted, but its log is still compared.
    expect(judgeFaultModel('pbft', 4, validateScenario(crash(false)).faults).byzantineNodes).toEqual([]);
  });
});

describe('scenario library', () => {
  const library = loadScenarioLibrary();

  it('covers every fault kind and a fault-free baseline, for both protocols', () => {
    for (const protocol of ['pbft', 'epaxos'] as const) {
      const scenarios = library.filter((s) => s.protocol === protocol);
      expect(scenarios.some((s) => s.faults.length === 0)).toBe(true);
      const kinds = new Set(scenarios.flatMap((s) => s.faults.map((f) => f.kind)));
      const required = protocol === 'pbft' ? FAULT_KINDS : FAULT_KINDS;
      for (const kind of required) expect(kinds.has(kind), `${protocol} library lacks ${kind}`).toBe(true);
    }
  });

  it('keeps PBFT scenarios within the fault model and labels Byzantine EPaxos scenarios as beyond it', () => {
    for (const scenario of library) {
      const verdict = judgeFaultModel(scenario.protocol!, scenario.nodes, scenario.faults);
      const expectBeyond = scenario.name.includes('beyond');
      expect(verdict.beyondFaultModel, `${scenario.name}: ${verdict.reasons.join('; ')}`).toBe(expectBeyond);
    }
  });
});

describe('generated corpora', () => {
  for (const protocol of ['pbft', 'epaxos'] as const) {
    it(`${protocol}: valid, varied, labelled, within the fault model, reproducible`, () => {
      const corpus = generateScenarios({ count: 120, seed: 99, protocol });
      expect(generateScenarios({ count: 120, seed: 99, protocol })).toEqual(corpus);
      expect(generateScenarios({ count: 120, seed: 100, protocol })).not.toEqual(corpus);
      expect(new Set(corpus.map((g) => g.scenario.name)).size).toBe(120);
      const faultFree = corpus.filter((g) => g.labels.faultFree);
      expect(faultFree.length).toBeGreaterThan(5);
      expect(faultFree.every((g) => g.scenario.faults.length === 0 && g.labels.kinds.length === 0)).toBe(true);
      const kinds = new Set(corpus.flatMap((g) => g.labels.kinds));
      const expected = protocol === 'pbft' ? FAULT_KINDS : FAULT_KINDS.filter((k) => !['equivocation', 'forged_vote', 'state_corruption'].includes(k));
      expect([...kinds].sort()).toEqual([...expected].sort());
      for (const { scenario, labels } of corpus) {
        expect(validateScenario(scenario)).toEqual(scenario);
        expect(labels.beyondFaultModel).toBe(false);
        expect(labels.kinds).toEqual([...new Set(scenario.faults.map((f) => f.kind))].sort());
        expect(scenario.protocol).toBe(protocol);
      }
    });
  }
});
