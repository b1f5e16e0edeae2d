/** The scenario library shipped in cluster/scenarios/ (one YAML file per scenario). */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Protocol } from '../../core/trace-schema.ts';
import { loadScenarioFile, type Scenario } from './scenario.ts';

export const SCENARIO_DIR = fileURLToPath(new URL('../scenarios/', import.meta.url));

export function loadScenarioLibrary(options: { dir?: string; protocol?: Protocol } = {}): Scenario[] {
  const dir = options.dir ?? SCENARIO_DIR;
  return readdirSync(dir)
    .filter((file) => /\.(ya?ml|json)$/.test(file))
    .sort()
    .map((file) => loadScenarioFile(join(dir, file)))
    .filter((scenario) => options.protocol === undefined || scenario.protocol === options.protocol);
}
