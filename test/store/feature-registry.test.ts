/**
 * The feature registry against what is derived from it and what restates it: the DDL of
 * migration 5 (parsed from its text; the contract test checks the tables the engine created),
 * docs/features.md, the feature-spec hash, and the label registry. No store needed.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isRetriable } from '../../core/errors.ts';
import { PHASES } from '../../core/trace-schema.ts';
import { assertFeatureSpec, FEATURE_LEVELS, FEATURE_PHASES, FEATURE_TABLES, FEATURES, featureDocTable, featureSpecHash, FeatureSpecError, featureTableColumns, keyDocTable, type FeatureSpec } from '../../store/feature-registry.ts';
import { labelDocTable, LABELS } from '../../store/labels.ts';
import { MIGRATIONS } from '../../store/migrations.ts';

const ROOT = join(import.meta.dirname, '../..');

/** `name type` pairs of one CREATE TABLE statement of a migration. */
function ddlColumns(statement: string): { name: string; type: string }[] {
  const head = statement.slice(0, statement.indexOf('ENGINE'));
  const body = head.slice(head.indexOf('(') + 1, head.lastIndexOf(')'));
  return body
    .split(',\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const space = line.indexOf(' ');
      return { name: line.slice(0, space), type: line.slice(space + 1) };
    });
}

function docSection(doc: string, name: string): string {
  const begin = `<!-- registry:${name} -->\n`;
  const end = `\n<!-- /registry:${name} -->`;
  const from = doc.indexOf(begin);
  const to = doc.indexOf(end);
  expect(from, `docs/features.md has a ${name} section`).toBeGreaterThanOrEqual(0);
  return doc.slice(from + begin.length, to);
}

describe('feature registry', () => {
  it('names are unique identifiers, every feature has a unit, a level, a definition and a doc', () => {
    const names = FEATURES.map((f) => f.name);
    expect(new Set(names).size).toBe(names.length);
    for (const f of FEATURES) {
      expect(f.name, f.name).toMatch(/^[a-z][a-z0-9_]*$/);
      expect(f.unit.length, f.name).toBeGreaterThan(0);
      expect(f.levels.length, f.name).toBeGreaterThan(0);
      expect(f.definition.length, f.name).toBeGreaterThan(0);
      expect(f.doc.length, f.name).toBeGreaterThan(0);
      // Normalised features are row expressions over features; raw ones and covariates aggregate the source.
      expect(f.stage, f.name).toBe(f.kind === 'normalised' ? 'row' : 'aggregate');
    }
    expect(new Set(FEATURE_PHASES)).toEqual(new Set<string>([...PHASES.pbft, ...PHASES.epaxos]));
    for (const phase of FEATURE_PHASES) expect(names).toContain(`phase_${phase}`);
  });

  it('a normalised feature divides by max(denominator, 1) over features of its own levels (the 0/0 rule)', () => {
    const byName = new Map(FEATURES.map((f) => [f.name, f]));
    for (const f of FEATURES.filter((x) => x.kind === 'normalised')) {
      const match = /^(\w+) \/ greatest\((\w+), 1\)$/.exec(f.definition);
      expect(match, f.name).not.toBeNull();
      for (const input of [match![1]!, match![2]!]) {
        const spec = byName.get(input);
        expect(spec, `${f.name} reads ${input}`).toBeDefined();
        for (const level of f.levels) expect(spec!.levels, `${f.name} at ${level}`).toContain(level);
      }
    }
    expect(FEATURES.filter((f) => f.kind === 'covariate').map((f) => f.name)).toEqual(['requests_received', 'executed_ops']);
  });

  it("migration 5 creates exactly the registry's columns, in order, for both levels", () => {
    const migration = MIGRATIONS.find((m) => m.version === 5);
    expect(migration?.name).toBe('features_any_window');
    for (const level of FEATURE_LEVELS) {
      const create = migration!.statements.find((s) => s.includes(`CREATE TABLE IF NOT EXISTS {db}.${FEATURE_TABLES[level]} (`));
      expect(create, level).toBeDefined();
      expect(ddlColumns(create!), level).toEqual(featureTableColumns(level));
    }
    expect(migration!.statements).toContain('DROP TABLE IF EXISTS {db}.features_node_1s');
  });

  it('docs/features.md lists every key column, feature and label exactly as the registries define them', () => {
    const doc = readFileSync(join(ROOT, 'docs/features.md'), 'utf8');
    expect(docSection(doc, 'keys')).toBe(keyDocTable());
    expect(docSection(doc, 'features')).toBe(featureDocTable());
    expect(docSection(doc, 'labels')).toBe(labelDocTable());
    for (const f of FEATURES) expect(featureDocTable()).toContain(`| \`${f.name}\` | ${f.unit} |`);
    for (const l of LABELS) expect(labelDocTable()).toContain(`| \`${l.name}\` |`);
  });

  it('labels and features do not share a name (models read no labels)', () => {
    const features = new Set(FEATURES.map((f) => f.name));
    for (const label of LABELS) expect(features.has(label.name), label.name).toBe(false);
  });
});

describe('feature-spec hash', () => {
  it('is a SHA-256 hex digest, stable for the same registry and width', () => {
    expect(featureSpecHash(100)).toMatch(/^[0-9a-f]{64}$/);
    expect(featureSpecHash(100)).toBe(featureSpecHash(100));
  });

  it('changes with the window width', () => {
    expect(featureSpecHash(100)).not.toBe(featureSpecHash(1_000));
  });

  it('changes when a definition, a unit or a level changes (the registry array is mutated and restored)', () => {
    const registry = FEATURES as FeatureSpec[];
    const original = registry[1]!;
    const before = featureSpecHash(100);
    try {
      for (const change of [{ definition: 'countDistinct(node_seq)' }, { unit: 'records' }, { levels: ['node'] as const }, { name: 'transitions_renamed' }]) {
        registry[1] = { ...original, ...change };
        expect(featureSpecHash(100), JSON.stringify(change)).not.toBe(before);
      }
    } finally {
      registry[1] = original;
    }
    expect(featureSpecHash(100)).toBe(before);
  });

  it('assertFeatureSpec passes on the same spec and throws a coded, non-retriable error naming both hashes otherwise', () => {
    const trained = featureSpecHash(100);
    expect(() => assertFeatureSpec(trained, 100)).not.toThrow();
    let error: unknown;
    try {
      assertFeatureSpec(trained, 1_000);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(FeatureSpecError);
    const spec = error as FeatureSpecError;
    expect(spec.code).toBe('FEATURE_SPEC_MISMATCH');
    expect(isRetriable(spec)).toBe(false);
    expect(spec.message).toContain(trained);
    expect(spec.message).toContain(featureSpecHash(1_000));
    expect(spec.expectedHash).toBe(trained);
    expect(spec.actualHash).toBe(featureSpecHash(1_000));
  });
});
