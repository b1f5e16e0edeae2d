/**
 * The protocols Lattice can run, by name, and the built-in scenario library.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ScenarioError } from '../core/errors.ts';
import { PROTOCOLS, type Protocol } from '../core/trace-schema.ts';
import { epaxosProtocol } from './epaxos/index.ts';
import { pbftProtocol } from './pbft/index.ts';
import type { ProtocolDefinition } from './protocol.ts';

const REGISTRY: Record<Protocol, ProtocolDefinition> = { pbft: pbftProtocol, epaxos: epaxosProtocol };

export function protocolByName(name: string): ProtocolDefinition {
  const protocol = REGISTRY[name as Protocol];
  if (!protocol) throw new ScenarioError('command line', [{ path: 'protocol', message: `unknown protocol "${name}"; expected one of ${PROTOCOLS.join(', ')}` }]);
  return protocol;
}

export const SCENARIO_DIR = resolve(import.meta.dirname, 'scenarios');

/** The built-in scenarios, by name (file name without extension). */
export function listScenarios(): string[] {
  return readdirSync(SCENARIO_DIR)
    .filter((f) => /\.(ya?ml|json)$/.test(f))
    .map((f) => f.replace(/\.(ya?ml|json)$/, ''))
    .sort();
}

/** A path as given, or the library scenario of that name. */
export function scenarioPath(nameOrPath: string): string {
  if (existsSync(nameOrPath)) return nameOrPath;
  for (const ext of ['yaml', 'yml', 'json']) {
    const candidate = join(SCENARIO_DIR, `${nameOrPath}.${ext}`);
    if (existsSync(candidate)) return candidate;
  }
  throw new ScenarioError(nameOrPath, [{ path: '', message: `no such file, and no built-in scenario of that name (see \`lattice chaos list\`: ${listScenarios().join(', ')})` }]);
}
