/**
 * Artefacts: save → load gives identical scores; a tampered file is refused naming the section
 * that changed; one computed on another feature spec (or window width) is refused with
 * FEATURE_SPEC_MISMATCH naming both hashes; the creation time comes from the injected clock.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../core/clock.ts';
import { featureNames, featureSpecHash } from '../../store/feature-registry.ts';
import { ArtefactError, buildArtefact, canonicalJson, readArtefact, verifyArtefact, writeArtefact, type Artefact } from '../../models/artefact.ts';
import { RobustZDetector } from '../../models/robust-z.ts';
import { createRng, syntheticMatrix } from './support.ts';

const names = featureNames('cluster');
const clock = new ManualClock(Date.UTC(2026, 11, 2, 12, 0, 0) * 1000);

function artefact(): { artefact: Artefact; detector: RobustZDetector } {
  const detector = new RobustZDetector('cluster', 100, names);
  detector.fit(syntheticMatrix(createRng(1), 300));
  const thresholds = { 'pbft/n4': { threshold: 4.5, alert_windows: 2, budget_false_alarms_per_hour: 5, calibration_false_alarms: 0, calibration_fault_free_hours: 0.1, calibration_runs: 3 } };
  return {
    detector,
    artefact: buildArtefact({ detector, clock, thresholds, training: { corpus: 'train', runs: ['a', 'b'], seed: 1, windows: 300, fit_on: 'normal windows' }, calibration: { corpus: 'calibration', runs: ['c'] }, metrics: { note: 'test' } }),
  };
}

/** Rewrites an artefact's content and seals it again (a consistent artefact of other content, as an older build would write). */
function resealed(a: Artefact, change: (content: Record<string, unknown>) => void): Artefact {
  const { checksum: _checksum, ...content } = structuredClone(a);
  change(content as unknown as Record<string, unknown>);
  return { ...content, checksum: { algorithm: 'sha256', value: createHash('sha256').update(canonicalJson(content)).digest('hex'), sections: {} } };
}

describe('model artefacts', () => {
  it('records what the model is, with the creation time from the clock', () => {
    const { artefact: a } = artefact();
    expect(a.kind).toBe('robust-z');
    expect(a.created_at).toBe('2026-12-02T12:00:00.000Z');
    expect(a.version).toMatch(/^20261202T120000Z-[0-9a-f]{8}$/);
    expect(a.feature_spec_hash).toBe(featureSpecHash(100));
    expect(a.feature_names).toEqual(names);
    expect(a.level).toBe('cluster');
    expect(a.checksum.value).toMatch(/^[0-9a-f]{64}$/);
    expect(a.training.runs).toEqual(['a', 'b']);
  });

  it('save → load gives identical scores', () => {
    const { artefact: a, detector } = artefact();
    const dir = mkdtempSync(join(tmpdir(), 'lattice-artefact-'));
    const path = writeArtefact(dir, a);
    const loaded = readArtefact(path, { windowMs: 100, level: 'cluster' });
    const probe = syntheticMatrix(createRng(9), 80, { load: () => 300 });
    expect(Array.from(loaded.detector.score(probe).scores)).toEqual(Array.from(detector.score(probe).scores));
    expect(Array.from(loaded.detector.score(probe).contributions)).toEqual(Array.from(detector.score(probe).contributions));
    expect(loaded.artefact.thresholds).toEqual(a.thresholds);
  });

  it('refuses a tampered artefact, naming what changed', () => {
    const { artefact: a } = artefact();
    const dir = mkdtempSync(join(tmpdir(), 'lattice-artefact-'));
    const path = writeArtefact(dir, a);
    const text = JSON.parse(readFileSync(path, 'utf8'));
    text.thresholds['pbft/n4'].threshold = 99;
    writeFileSync(path, JSON.stringify(text));
    let error: unknown;
    try {
      readArtefact(path);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ArtefactError);
    expect((error as ArtefactError).code).toBe('ARTEFACT_CHECKSUM_MISMATCH');
    expect((error as ArtefactError).sections).toEqual(['thresholds']);
    expect((error as Error).message).toMatch(/checksum mismatch: .*changed: thresholds/);
    // The detector's state too.
    const state = structuredClone(a) as unknown as { state: { contexts: { bins: { median: number[] }[] }[] } };
    state.state.contexts[0]!.bins[0]!.median[0]! += 1;
    expect(() => verifyArtefact(state, 'x.json')).toThrow(/changed: state/);
  });

  it('refuses an artefact of another feature spec or window width, naming both', () => {
    const { artefact: a } = artefact();
    const other = resealed(a, (c) => (c.feature_spec_hash = 'f'.repeat(64)));
    expect(() => verifyArtefact(other, 'other.json')).toThrow(expect.objectContaining({ code: 'FEATURE_SPEC_MISMATCH', expectedHash: 'f'.repeat(64), actualHash: featureSpecHash(100) }));
    expect(() => verifyArtefact(a, 'a.json', { windowMs: 250 })).toThrow(/window_ms: the model is for 100 ms windows, 250 ms asked for/);
    expect(() => verifyArtefact(a, 'a.json', { level: 'node' })).toThrow(/level: the model is for cluster windows, node asked for/);
    const renamed = resealed(a, (c) => (c.feature_names = [...names.slice(1), 'gone_feature']));
    expect(() => verifyArtefact(renamed, 'r.json')).toThrow(/feature_names differ .*not in the registry: gone_feature/);
  });

  it('refuses what is not an artefact', () => {
    expect(() => verifyArtefact({ format: 'other' }, 'x.json')).toThrow(expect.objectContaining({ code: 'ARTEFACT_INVALID' }));
    const dir = mkdtempSync(join(tmpdir(), 'lattice-artefact-'));
    writeFileSync(join(dir, 'bad.json'), '{ not json');
    expect(() => readArtefact(join(dir, 'bad.json'))).toThrow(/not readable as JSON/);
  });

  it('canonical JSON sorts keys and refuses non-finite numbers', () => {
    expect(canonicalJson({ b: 1, a: [2, { d: 0.1, c: null }] })).toBe('{"a":[2,{"c":null,"d":0.1}],"b":1}');
    expect(() => canonicalJson({ x: Number.NaN })).toThrow(/\$\.x is NaN/);
  });
});
