/**
 * Protocols a real-process cluster can run, by name. PBFT and EPaxos are loaded lazily, so this
 * module (and the toy protocol the transport tests use) works before or without them.
 */
import { LatticeError } from '../../core/errors.ts';
import type { ProtocolDefinition } from '../protocol.ts';
import { toyProtocol } from './toy-protocol.ts';

export const TCP_PROTOCOLS = ['pbft', 'epaxos', 'toy'] as const;
export type TcpProtocolName = (typeof TCP_PROTOCOLS)[number];

export function isTcpProtocolName(name: string): name is TcpProtocolName {
  return (TCP_PROTOCOLS as readonly string[]).includes(name);
}

const MODULES: Record<'pbft' | 'epaxos', { path: string; exportName: string }> = {
  pbft: { path: '../pbft/index.ts', exportName: 'pbftProtocol' },
  epaxos: { path: '../epaxos/index.ts', exportName: 'epaxosProtocol' },
};

export async function loadProtocol(name: TcpProtocolName): Promise<ProtocolDefinition> {
  if (name === 'toy') return toyProtocol;
  const { path, exportName } = MODULES[name];
  let loaded: Record<string, unknown>;
  try {
    // A computed specifier: the module may not exist yet, and the type checker must not insist.
    loaded = (await import(new URL(path, import.meta.url).href)) as Record<string, unknown>;
  } catch (error) {
    throw new LatticeError('NOT_FOUND', `protocol ${name} is not available (${path} failed to load)`, { cause: error });
  }
  const definition = loaded[exportName];
  if (typeof definition !== 'object' || definition === null || typeof (definition as ProtocolDefinition).createReplica !== 'function') {
    throw new LatticeError('NOT_FOUND', `protocol ${name}: ${path} does not export ${exportName}`);
  }
  return definition as ProtocolDefinition;
}

export async function isProtocolAvailable(name: TcpProtocolName): Promise<boolean> {
  try {
    await loadProtocol(name);
    return true;
  } catch {
    return false;
  }
}
