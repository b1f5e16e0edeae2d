/**
 * Data flows one way: cluster → collector → store → training/models → detector → dashboards.
 * A module may import from modules upstream of it and from the shared core, never downstream;
 * app/ (the composition root), bench/ and test/ may import anything.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
/** Rank in the flow; equal ranks are siblings that must not import each other. */
const RANK: Record<string, number> = { core: 0, cluster: 1, store: 1, collector: 2, models: 3, training: 4, detector: 5, dashboards: 6 };

function tsFiles(dir: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  return entries.flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return tsFiles(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found: string[] = [];
  for (const match of text.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)['"](\.{1,2}\/[^'"]+)['"]/g)) found.push(match[1]!);
  return found;
}

describe('module layering', () => {
  it('no module imports from a module downstream of it (or a sibling)', () => {
    const violations: string[] = [];
    for (const module of Object.keys(RANK)) {
      for (const file of tsFiles(join(ROOT, module))) {
        for (const spec of importsOf(file)) {
          const target = relative(ROOT, resolve(dirname(file), spec)).split('/')[0]!;
          if (target === module) continue;
          const allowed = target in RANK && RANK[target]! < RANK[module]!;
          if (!allowed) violations.push(`${relative(ROOT, file)} imports ${spec} (${module} → ${target})`);
        }
      }
    }
    expect(violations).toEqual([]);
  });

  it('checks real files (the scan is not vacuous)', () => {
    expect(tsFiles(join(ROOT, 'core')).length).toBeGreaterThan(3);
    expect(importsOf(join(ROOT, 'store', 'client.ts'))).toContain('../core/errors.ts');
  });
});

describe('seeded code takes time and randomness as parameters', () => {
  // cluster/tcp is the effectful edge that runs the same protocol code on the wall clock.
  const EDGES = ['cluster/tcp/'];
  it('has no direct Math.random, Date.now, performance.now or setTimeout in cluster/, models/, training/', () => {
    const offenders: string[] = [];
    for (const module of ['cluster', 'models', 'training']) {
      for (const file of tsFiles(join(ROOT, module))) {
        const rel = relative(ROOT, file);
        if (EDGES.some((edge) => rel.startsWith(edge))) continue;
        readFileSync(file, 'utf8')
          .split('\n')
          .forEach((line, i) => {
            const code = line.replace(/\/\/.*$/, '');
            if (/Math\.random\(|Date\.now\(|performance\.now\(|\bsetTimeout\(|\bsetInterval\(/.test(code)) offenders.push(`${rel}:${i + 1}: ${line.trim()}`);
          });
      }
    }
    expect(offenders).toEqual([]);
  });
});
