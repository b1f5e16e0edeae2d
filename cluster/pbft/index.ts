/**
 * PBFT (Castro & Liskov, OSDI 1999) as a Lattice protocol: n = 3f+1 replicas.
 */
import { ConfigError, type FieldError } from '../../core/errors.ts';
import type { ProtocolDefinition, ProtocolOptions } from '../protocol.ts';
import { pbftByzantineHooks } from './byzantine.ts';
import { PbftClient } from './client.ts';
import { PbftReplica } from './replica.ts';

export function checkPbftOptions(options: ProtocolOptions): void {
  const errors: FieldError[] = [];
  const positive = (path: 'timeoutUs' | 'batchSizeMax' | 'checkpointInterval' | 'logWindow'): void => {
    const value = options[path];
    if (!Number.isSafeInteger(value) || value <= 0) errors.push({ path, message: 'expected a positive integer' });
  };
  positive('timeoutUs');
  positive('batchSizeMax');
  positive('checkpointInterval');
  positive('logWindow');
  // The primary must be able to reach the next checkpoint inside the window, or it stalls.
  if (options.logWindow < options.checkpointInterval) errors.push({ path: 'logWindow', message: 'must be >= checkpointInterval' });
  if (errors.length > 0) throw new ConfigError(errors, 'PBFT protocol options');
}

export const pbftProtocol: ProtocolDefinition = {
  name: 'pbft',
  faultTolerance: (n) => Math.max(0, Math.floor((n - 1) / 3)),
  minReplicas: 4,
  createReplica(env, options) {
    checkPbftOptions(options);
    return new PbftReplica(env, options);
  },
  createClient(env, options) {
    checkPbftOptions(options);
    return new PbftClient(env, options);
  },
  byzantine: pbftByzantineHooks,
};

export { PbftReplica, type PbftReplicaStatus } from './replica.ts';
export { PbftClient } from './client.ts';
