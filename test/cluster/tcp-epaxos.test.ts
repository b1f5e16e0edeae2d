/** EPaxos as 5 real processes over TCP on loopback: requests complete, states agree, f = 2 crashes is survived. */
import { describe } from 'vitest';
import { tcpClusterSuite } from './tcp-suite.ts';

describe('EPaxos over TCP (5 processes)', () => {
  tcpClusterSuite({ protocol: 'epaxos', nodes: 5, kill: [3, 4], trace: 'off' });
});
