/**
 * EPaxos (Moraru et al., SOSP'13) as a `ProtocolDefinition`: n = 2F+1 replicas, crash faults.
 */
import type { ProtocolDefinition } from '../protocol.ts';
import { epaxosByzantineHooks } from './byzantine.ts';
import { EpaxosClient } from './client.ts';
import { faultsTolerated } from './quorums.ts';
import { EpaxosReplica } from './replica.ts';

export const epaxosProtocol: ProtocolDefinition = {
  name: 'epaxos',
  faultTolerance: faultsTolerated,
  minReplicas: 3,
  createReplica: (env, options) => new EpaxosReplica(env, options),
  createClient: (env, options) => new EpaxosClient(env, options),
  byzantine: epaxosByzantineHooks,
};

export { EpaxosReplica } from './replica.ts';
export { EpaxosClient } from './client.ts';
export { commandsConflict } from './conflicts.ts';
